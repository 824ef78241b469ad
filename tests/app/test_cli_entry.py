"""app/cli.py's entry: each command registers only its own module, and every command is mapped to
the module that registers it."""

from __future__ import annotations

import os
import subprocess
import sys

from app import cli

COMMAND_MODULE_PREFIX = "app."


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    cli._register()
    commands = [c for c in cli.app.registered_commands if c.callback is not None]
    names = {str(c.name): c.callback.__module__ for c in commands if c.callback is not None}
    assert set(names) == set(cli.COMMAND_MODULES)
    for name, module in names.items():
        assert module == COMMAND_MODULE_PREFIX + cli.COMMAND_MODULES[name], name


def test_a_command_imports_only_its_own_module() -> None:
    code = ("import sys, app.cli\n"
            "app.cli._register('search')\n"
            "print(sorted(m for m in sys.modules if m.startswith('app.cmd_')))\n"
            "print(sorted(c.name for c in app.cli.app.registered_commands))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=os.environ.copy()).stdout.splitlines()
    assert out == ["['app.cmd_index']", "['doctor', 'ingest', 'search', 'status']"]


def rag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                          timeout=120, env=os.environ.copy())


def test_help_lists_every_command_and_each_command_runs_alone() -> None:
    top = rag("--help")
    assert top.returncode == 0
    for name in cli.COMMAND_MODULES:
        assert name in top.stdout, name
    ask = rag("-v", "ask", "--help")
    assert ask.returncode == 0 and "--strategy" in ask.stdout, ask.stdout + ask.stderr
    bad = rag("nonsense")
    assert bad.returncode == 2 and "No such command" in bad.stderr
