"""What the user sees at the edges: a broken `rag.toml` or an index folder that is a file
end in one line and a non-zero exit, file names with rich markup are printed as they are,
and the chat UI stays on this machine (Streamlit options, `.streamlit/config.toml`, warnings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cmd_ui import streamlit_command
from app.doctor import CHECKS, privacy
from core.errors import ConfigError
from core.settings import load_settings
from tests.conftest import REPO, SAMPLE


def rag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})}, cwd=os.getcwd(),
    )


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    return lines[0]


# 1. rag.toml that is not TOML, or holds a value of the wrong type

def test_malformed_rag_toml_is_one_line_naming_file_line_and_fix(isolated: Path) -> None:
    (isolated / "rag.toml").write_text("[search\nmode = ")
    line = one_error_line(rag("status"))
    assert "rag.toml is not valid TOML" in line and "(at line 1, column 8)" in line
    assert "fix the syntax" in line and "RAG_CONFIG" in line


def test_bad_value_in_rag_toml_names_the_key(isolated: Path) -> None:
    (isolated / "rag.toml").write_text('[search]\ntop_k = "x"\n')
    line = one_error_line(rag("status"))
    assert "search.top_k = 'x' is invalid" in line and "valid integer" in line
    assert "fix it in rag.toml (or RAG_SEARCH__TOP_K)" in line
    # the same value from the environment names the variable
    (isolated / "rag.toml").write_text("")
    line = one_error_line(rag("search", "coffee", env={"RAG_SEARCH__TOP_K": "x"}))
    assert "search.top_k = 'x'" in line and "the environment variable RAG_SEARCH__TOP_K" in line


def test_load_settings_raises_config_error(isolated: Path) -> None:
    (isolated / "rag.toml").write_text("[ui]\nport = 'high'\n[[route.collections]]\ndescription = 'x'\n")
    with pytest.raises(ConfigError) as e:
        load_settings()
    msg = str(e.value)
    assert "ui.port = 'high' is invalid" in msg
    assert "route.collections[0].name is required" in msg and "RAG_ROUTE__COLLECTIONS as JSON" in msg


# 2. RAG_INDEX_DIR that is a file

@pytest.mark.parametrize("args", [("status",), ("search", "coffee"), ("ask", "what grind size?"),
                                  ("ingest", str(SAMPLE))])
def test_index_dir_that_is_a_file_is_refused_by_every_command(tmp_path: Path, args: tuple[str, ...]) -> None:
    f = tmp_path / "not-a-folder"
    f.write_text("keep me")
    line = one_error_line(rag(*args, env={"RAG_INDEX_DIR": str(f)}))
    assert line.startswith(
        f"Error: RAG_INDEX_DIR (or index_dir) {f} is a file, not a folder; point it at a folder"
    )
    assert f.read_text() == "keep me"


def test_index_dir_under_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="lies under .*file, which is a file, not a folder"):
        load_settings(index_dir=f / "index")


# 3. file names and paths with rich markup are printed verbatim

def test_markup_in_file_names_and_paths_is_printed_verbatim(tmp_path: Path) -> None:
    # "/" cannot be in a file name, so the closing tags come from folders named "[".
    docs = tmp_path / "[" / "x]docs"
    docs.mkdir(parents=True)
    (docs / "[red]note.md").write_text(
        "# Tea\n\n" + "Green tea is brewed at 80 degrees for two minutes. " * 8
    )
    (docs / "[bold]bad.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    index = tmp_path / "[" / "z]index"
    r = rag("ingest", str(docs), env={"RAG_INDEX_DIR": str(index)})
    assert "Traceback" not in r.stderr and "MarkupError" not in r.stderr, r.stderr
    assert r.returncode == 1  # one file failed
    # the failed file is named by its path (folders may repeat names), markup and all
    assert f"failed {docs / '[bold]bad.pdf'}" in r.stderr, r.stderr
    assert "1 added, 0 changed, 0 unchanged, 1 failed" in r.stdout
    assert f"-> {index}" in r.stdout and "[/z]index" in r.stdout
    st = rag("status", env={"RAG_INDEX_DIR": str(index), "COLUMNS": "500"})  # no cut cells
    assert st.returncode == 0 and "Traceback" not in st.stderr, st.stderr
    assert str(index) in st.stdout


# 5. the UI stays on this machine

def _streamlit_params(cmd: list[str]) -> dict[str, object]:
    """The command line parsed by Streamlit's own `run` command: unknown options fail here."""
    from streamlit.web.cli import main

    assert cmd[1:4] == ["-m", "streamlit", "run"]
    return dict(main.commands["run"].make_context("run", cmd[4:]).params)


@pytest.mark.parametrize(("host", "hosts"), [
    ("127.0.0.1", ("localhost", "127.0.0.1", "::1")),
    ("::1", ("localhost", "127.0.0.1", "::1")),
    ("192.168.1.5", ("localhost", "127.0.0.1", "::1", "192.168.1.5")),
    ("0.0.0.0", ("*",)),
])
def test_streamlit_command_has_the_host_protections(host: str, hosts: tuple[str, ...]) -> None:
    cmd = streamlit_command(load_settings(ui={"host": host}))
    for opt, val in [("--server.enableCORS", "true"), ("--server.enableXsrfProtection", "true"),
                     ("--browser.gatherUsageStats", "false"), ("--server.headless", "true")]:
        assert cmd[cmd.index(opt) + 1] == val
    p = _streamlit_params(cmd)
    assert p["server_address"] == host and p["server_allowedHosts"] == hosts
    assert p["server_enableCORS"] is True and p["server_enableXsrfProtection"] is True
    assert p["browser_gatherUsageStats"] is False


def test_repo_streamlit_config_is_private() -> None:
    import tomllib

    path = REPO / ".streamlit" / "config.toml"
    cfg = tomllib.loads(path.read_text())
    assert cfg["browser"]["gatherUsageStats"] is False
    server = cfg["server"]
    assert server["address"] == "127.0.0.1" and server["headless"] is True
    assert server["enableCORS"] is True and server["enableXsrfProtection"] is True
    assert server["allowedHosts"] == ["localhost", "127.0.0.1", "::1"]
    # and Streamlit itself reads them from there when started in the repository root
    keys = ["browser.gatherUsageStats", "server.address", "server.headless", "server.enableCORS",
            "server.enableXsrfProtection", "server.allowedHosts"]
    code = ("import json, streamlit.config as c; c.get_config_options(force_reparse=True); "
            f"print(json.dumps({{k: [c.get_option(k), c.get_where_defined(k)] for k in {keys!r}}}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for k in keys:
        section, name = k.split(".")
        assert got[k] == [cfg[section][name], str(path)], k


class _FakeServer:
    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def terminate(self) -> None:
        pass


def _rag_ui(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    from app import cli

    started: list[list[str]] = []

    def popen(cmd: list[str]) -> _FakeServer:
        started.append(cmd)
        return _FakeServer(cmd)

    monkeypatch.setattr("app.cmd_ui.subprocess.Popen", popen)
    monkeypatch.setattr("app.cmd_ui.signal.signal", lambda *a: None)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cli._register()
    res = CliRunner().invoke(cli.app, ["ui"])
    assert res.exit_code == 0, res.output
    assert len(started) == 1
    return res.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "myhost.example.org"])
def test_rag_ui_warns_for_a_host_off_loopback(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    err = _rag_ui(monkeypatch, {"RAG_UI__HOST": host})
    assert f"warning: ui.host {host} is not a loopback address" in err
    assert "ollama_url" not in err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_rag_ui_is_quiet_on_loopback(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    assert "warning" not in _rag_ui(monkeypatch, {"RAG_UI__HOST": host})


def test_rag_ui_warns_for_a_remote_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _rag_ui(monkeypatch, {"RAG_OLLAMA_URL": "http://10.1.2.3:11434"})
    assert "warning: ollama_url http://10.1.2.3:11434 is not on this machine" in err
    assert "ui.host" not in err


@pytest.mark.parametrize(("ui", "ollama", "warned"), [
    ("127.0.0.1", "http://127.0.0.1:11434", []),
    ("localhost", "http://localhost:11434", []),
    ("::1", "http://[::1]:11434", []),
    ("0.0.0.0", "http://127.0.0.1:11434", ["ui.host 0.0.0.0"]),
    ("127.0.0.1", "http://gpu-box:11434", ["ollama_url http://gpu-box:11434"]),
    ("10.0.0.2", "10.0.0.3:11434", ["ui.host 10.0.0.2", "ollama_url 10.0.0.3:11434"]),
])
def test_doctor_privacy_check(ui: str, ollama: str, warned: list[str]) -> None:
    assert privacy in CHECKS
    c = privacy(load_settings(ui={"host": ui}, ollama_url=ollama))
    assert c["state"] == ("warn" if warned else "ok"), c
    for w in warned:
        assert w in c["detail"]
    assert ("not a loopback" in c["detail"]) == any(w.startswith("ui.host") for w in warned)
    assert ("not on this machine" in c["detail"]) == any(w.startswith("ollama") for w in warned)


def test_rag_doctor_prints_the_privacy_warning() -> None:
    r = rag("doctor", env={"RAG_UI__HOST": "0.0.0.0"})
    assert "Traceback" not in r.stderr, r.stderr
    assert "-- privacy: ui.host 0.0.0.0 is not a loopback address" in r.stdout


def test_failure_lines_name_the_path_not_only_the_file_name(tmp_path: Path) -> None:
    from app.ingest_lines import located

    a, b = tmp_path / "a" / "notes.md", tmp_path / "b" / "notes.md"
    assert located(str(a), "notes.md is empty", tmp_path) == "a/notes.md is empty"
    assert located(str(b), "notes.md is empty", tmp_path) == "b/notes.md is empty"
    assert (
        located(str(a), f"{a}: cannot read (Permission denied)", tmp_path)
        == f"{a}: cannot read (Permission denied)"
    )
    assert located(str(a), "bad zip", tmp_path / "elsewhere") == f"{a}: bad zip"
