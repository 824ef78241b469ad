"""The `rag` command. Each group of commands lives in its own module and registers
itself here; this is the only place that turns errors into one line and an exit code."""

from __future__ import annotations

import logging
import os
import sys

import typer

from core.errors import RagError

app = typer.Typer(
    name="rag", help="Local, private question answering over your own documents.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what each stage does.")) -> None:
    _configure_logging(verbose)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("chromadb", "httpx", "sentence_transformers", "jieba", "urllib3", "bm25s", "transformers"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


# Each command's module. `rag search` imports and registers only the module of its command (the
# seven others took 45 ms of every command); --help, no command or an unknown one registers all.
COMMAND_MODULES = {
    "ingest": "cmd_index", "status": "cmd_index", "search": "cmd_index", "doctor": "cmd_index",
    "ask": "cmd_ask", "eval": "cmd_eval", "bench": "cmd_eval", "train-ranker": "cmd_rank",
    "tree": "cmd_tree", "graph": "cmd_graph", "ui": "cmd_ui", "serve": "cmd_serve",
}
_MODULES = tuple(dict.fromkeys(COMMAND_MODULES.values()))  # each once, in the order above
_registered: set[str] = set()


def _register(command: str | None = None) -> None:
    """Register the commands of `command`'s module, or of every module (no command, or one not in
    COMMAND_MODULES: a command added to a module without an entry there still runs)."""
    import importlib

    for name in [COMMAND_MODULES[command]] if command in COMMAND_MODULES else _MODULES:
        if name not in _registered:
            _registered.add(name)
            importlib.import_module(f"app.{name}").register(app)


def _command(argv: list[str]) -> str | None:
    """The command named in `argv` (the first argument that is not an option: the only option
    before it is -v)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    # rag uses no pydantic plugin; looking for them read every installed package's entry points
    # (16 ms of each command, the first time a settings model validated)
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        from app.served import answer_served

        # `rag search` / `rag ask` with a running `rag serve`: answered before Typer parses anything
        rc = answer_served(sys.argv[1:], _configure_logging)
        if rc is None:
            _register(_command(sys.argv[1:]))
            rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except RagError as e:
        typer.secho(f"Error: {e}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("Interrupted; the index is consistent and the next run completes it.", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:  # usage errors (an unknown option, a bad value) carry their own exit code
        import click

        # Typer 0.29 parses with its own copy of click, whose errors derive from TyperException,
        # not click.ClickException: both print one usage message, never a traceback.
        if isinstance(e, (click.ClickException, typer.TyperException)) and hasattr(e, "show"):
            e.show()
            sys.exit(getattr(e, "exit_code", 2))
        raise


# Commands whose process ends by `core.shutdown.quick_exit` once their output is written: the
# interpreter's teardown of everything they loaded took 0.2 s of each (a cold `rag search` over
# 100k chunks: median 1.79 -> 1.50 s). Not `rag serve` or `rag ui`, which clean up at a normal exit.
QUICK_EXIT = frozenset({"search", "ask", "ingest"})


def run() -> None:
    """The `rag` console script and `python -m app.cli`: `main`, then the quick exit for the
    commands in QUICK_EXIT. (Tests call `main` in process, which ends by SystemExit as usual.)"""
    code: int | str | None = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    if isinstance(code, str):  # what sys.exit("message") would print
        print(code, file=sys.stderr)
        code = 1
    if _command(sys.argv[1:]) not in QUICK_EXIT:
        sys.exit(code)
    from core.shutdown import quick_exit

    quick_exit(code or 0)


if __name__ == "__main__":
    run()
