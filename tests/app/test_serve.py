"""`rag serve` as a user runs it: a real server subprocess on a real index, real `rag search`
and `rag ask` subprocesses as clients. No timings are asserted (eval/bench/cold.py measures)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CORPUS = {
    "coffee.md": "# Coffee\n\nA French press wants a coarse grind and four minutes of steeping. "
                 "Espresso needs a fine grind and about 25 seconds under pressure.\n",
    "tea.md": "# Tea\n\nGreen tea brews best with water at 80 degrees for two minutes. "
              "Black tea takes boiling water and four minutes.\n",
}
NEW_WORD = "quokkaberry"  # in no file until the staleness test adds one


@dataclass
class Site:
    """An index folder, the working folder and the environment clients and servers share (the
    settings fingerprint covers every RAG_* variable and the working folder)."""

    work: Path
    index: Path
    env: dict[str, str]

    def rag(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.work, env={**self.env, **(env or {})})

    @property
    def serve_json(self) -> Path:
        return self.index / "serve.json"


@dataclass
class Server:
    proc: subprocess.Popen[str]
    info: dict[str, Any]

    def status(self) -> dict[str, Any]:
        status, body = request(self.info["port"], "GET", "/status", token=self.info["token"])
        assert status == 200, body
        return body

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _env(index: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RAG_")}
    env.update(RAG_INDEX_DIR=str(index), HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    return env


def request(port: int, method: str, path: str, payload: dict[str, Any] | None = None,
            token: str | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Rag-Token"] = token
    body = json.dumps(payload).encode() if payload is not None else None
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def start_server(site: Site) -> Server:
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=site.work, env=site.env,
                            text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240  # warm-up loads torch: minutes on a busy 2-core machine
    while time.monotonic() < deadline:
        if site.serve_json.exists():
            info = json.loads(site.serve_json.read_text())
            if info["pid"] == proc.pid:
                return Server(proc, info)
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"rag serve exited {proc.returncode}: {err}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("rag serve wrote no serve.json")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("serve")
    docs, work = root / "docs", root / "work"
    docs.mkdir()
    work.mkdir()
    for name, text in CORPUS.items():
        (docs / name).write_text(text)
    s = Site(work, root / "index", _env(root / "index"))
    r = s.rag("ingest", str(docs), "--no-progress")
    assert r.returncode == 0, r.stderr
    return s


@pytest.fixture(scope="module")
def server(site: Site) -> Iterator[Server]:
    srv = start_server(site)
    yield srv
    srv.stop()


def _hits(out: str) -> list[dict[str, Any]]:
    return json.loads(out)["hits"]


def test_serve_json_is_private_and_complete(site: Site, server: Server) -> None:
    mode = stat.S_IMODE(site.serve_json.stat().st_mode)
    assert mode == 0o600
    assert {"pid", "port", "token", "fingerprint", "started_at"} <= set(server.info)
    assert len(server.info["token"]) >= 32


def test_served_search_is_the_in_process_search(site: Site, server: Server) -> None:
    before = server.status()["search"]
    served = site.rag("-v", "search", "grind for a french press", "-k", "3", "--json")
    assert served.returncode == 0, served.stderr
    assert "answered by rag serve" in served.stderr
    local = site.rag("-v", "search", "grind for a french press", "-k", "3", "--json", "--no-serve")
    assert local.returncode == 0 and "answered by rag serve" not in local.stderr
    assert _hits(served.stdout) == _hits(local.stdout) and _hits(local.stdout)
    assert set(json.loads(served.stdout)) == set(json.loads(local.stdout))  # query, hits, timings, ranker
    assert server.status()["search"] == before + 1  # --no-serve did not reach it
    # the printed form too, from the same printing code
    text = site.rag("search", "green tea water", "-k", "1")
    assert text.stdout == site.rag("search", "green tea water", "-k", "1", "--no-serve").stdout
    assert "tea.md" in text.stdout


def test_served_ask_is_the_in_process_answer(site: Site, server: Server) -> None:
    q = "How long does green tea brew?"
    served = site.rag("-v", "ask", q, "--json")
    assert served.returncode == 0, served.stderr
    assert "answered by rag serve" in served.stderr
    local = json.loads(site.rag("ask", q, "--json", "--no-serve").stdout)
    got = json.loads(served.stdout)
    assert set(got) == set(local) and "trace" not in got
    for key in ("answer", "citations", "abstained", "mode", "backend", "support"):
        assert got[key] == local[key], key
    text = site.rag("ask", q)
    assert text.returncode == 0 and "Sources:" in text.stdout and "tea.md" in text.stdout


def test_requests_without_the_token_are_refused(server: Server) -> None:
    port = server.info["port"]
    for token in (None, "0" * 64, server.info["token"][:-1]):
        status, body = request(port, "POST", "/search", {"query": "coffee"}, token=token)
        assert status == 403 and "hits" not in body
        assert request(port, "GET", "/status", token=token)[0] == 403
    assert request(port, "POST", "/search", {"query": "coffee"}, token=server.info["token"])[0] == 200
    assert request(port, "POST", "/search", {"query": 3}, token=server.info["token"])[0] == 400


def test_other_settings_are_answered_in_process(site: Site, server: Server) -> None:
    before = server.status()["search"]
    r = site.rag("-v", "search", "espresso", "--json", env={"RAG_SEARCH__WINDOW_TOKENS": "0"})
    assert r.returncode == 0 and "answered by rag serve" not in r.stderr and "other settings" in r.stderr
    assert server.status()["search"] == before


def test_a_second_server_is_refused(site: Site, server: Server) -> None:
    r = site.rag("serve", timeout=240)
    assert r.returncode == 1 and "already runs" in r.stderr and str(server.info["pid"]) in r.stderr
    assert json.loads(site.serve_json.read_text())["token"] == server.info["token"]


def test_an_ingest_is_seen_by_the_next_served_search(site: Site, server: Server, tmp_path: Path) -> None:
    new = tmp_path / "fruit.md"
    new.write_text(f"# Fruit\n\nThe {NEW_WORD} is a small purple fruit that tastes of plums.\n")
    before = server.status()["reloads"]
    assert site.rag("ingest", str(new), "--no-progress").returncode == 0
    r = site.rag("-v", "search", NEW_WORD, "--mode", "bm25", "-k", "1", "--json")
    assert "answered by rag serve" in r.stderr
    hits = _hits(r.stdout)
    assert hits and hits[0]["source"] == str(new) and NEW_WORD in hits[0]["text"]
    dense = _hits(site.rag("search", "a purple fruit tasting of plums", "--mode", "dense", "--json").stdout)
    assert any(h["source"] == str(new) for h in dense)  # Chroma reopened too, not only BM25
    assert server.status()["reloads"] > before


def _copy(site: Site, tmp_path: Path) -> Site:
    """A copy of the index, for a server of its own (the module's server keeps serving the others)."""
    copy = Site(site.work, tmp_path / "index", _env(tmp_path / "index"))
    shutil.copytree(site.index, copy.index, symlinks=True, ignore=shutil.ignore_patterns("serve.json"))
    return copy


def test_a_dead_servers_file_is_removed_and_search_still_answers(site: Site, server: Server,
                                                                 tmp_path: Path) -> None:
    copy = _copy(site, tmp_path)
    dead = start_server(copy)
    dead.proc.send_signal(signal.SIGKILL)
    dead.proc.wait()
    assert copy.serve_json.exists()  # SIGKILL leaves it behind
    r = copy.rag("-v", "search", "espresso", "--json")
    assert r.returncode == 0 and "answered by rag serve" not in r.stderr
    assert "is gone" in r.stderr and not copy.serve_json.exists()
    assert _hits(r.stdout) == _hits(copy.rag("search", "espresso", "--json", "--no-serve").stdout)


def test_a_stopped_server_removes_its_file(site: Site, server: Server, tmp_path: Path) -> None:
    copy = _copy(site, tmp_path)
    live = start_server(copy)
    live.proc.terminate()
    assert live.proc.wait(timeout=60) == 0
    assert not copy.serve_json.exists()


def test_the_served_path_imports_no_heavy_module(site: Site, server: Server) -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "app.cli", "-v", "search", "tea", "--json"],
                       capture_output=True, text=True, timeout=120, cwd=site.work, env=site.env)
    assert r.returncode == 0 and "answered by rag serve" in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines}
    for heavy in ("pydantic", "pydantic_settings", "rich", "numpy", "torch", "chromadb", "core.settings",
                  "retrieval.pipeline", "urllib.request"):
        assert heavy not in imported, heavy


def test_registering_the_commands_imports_no_heavy_module() -> None:
    """Registering the commands (every `rag` start) imports none of the heavy packages and none
    of the product's modules but the benchmark registry (`rag bench --help` lists its names;
    it imports the standard library only, which the empty heavy list below checks)."""
    code = ("import sys, app.cli; app.cli._register(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'pydantic_settings', 'rich', 'numpy', 'torch', 'chromadb', 'retrieval', 'eval', "
            "'ingest') and m not in ('eval', 'eval.bench')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def _click_flags(command: str) -> set[str]:
    import typer.main

    from app import cli

    cli._register()
    cmd = typer.main.get_command(cli.app).commands[command]  # type: ignore[attr-defined]
    flags: set[str] = set()
    for p in cmd.params:
        if p.param_type_name == "option" and "--help" not in p.opts:
            flags |= set(p.opts) | set(p.secondary_opts)
    return flags


def test_the_fast_parser_knows_exactly_the_commands_options() -> None:
    from app.served import ASK_OPTIONS, SEARCH_OPTIONS

    assert {f for flags in SEARCH_OPTIONS for f in flags} == _click_flags("search")
    assert {f for flags in ASK_OPTIONS for f in flags} == _click_flags("ask")


def test_the_fast_parser_leaves_what_it_does_not_read_to_typer(
    site: Site, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from app.served import answer_served

    monkeypatch.chdir(site.work)
    monkeypatch.setenv("RAG_INDEX_DIR", str(site.index))  # the server's settings: the same fingerprint
    for argv in (["search", "tea", "--bogus"], ["search", "tea", "--help"], ["search", "-k", "x", "tea"],
                 ["search", "tea", "more"], ["ask"], ["status"], ["search", "tea", "--no-serve"], ["--json"]):
        assert answer_served(argv, lambda v: None) is None, argv
    before = server.status()["search"]
    assert answer_served(["search", "tea", "-k", "1", "--json"], lambda v: None) == 0
    assert len(json.loads(capsys.readouterr().out)["hits"]) == 1
    assert server.status()["search"] == before + 1


class _FakeProc:
    def __init__(self, cmd: list[str]) -> None:
        self.cmd, self.terminated = cmd, False

    def poll(self) -> int | None:
        return 0 if self.terminated else None

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def terminate(self) -> None:
        self.terminated = True

    def kill(self) -> None:
        self.terminated = True


def test_rag_ui_starts_rag_serve_beside_it_and_stops_it(
    site: Site, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from app import cli
    from app.cmd_ui import start_resident
    from core.settings import load_settings

    monkeypatch.chdir(site.work)
    monkeypatch.setenv("RAG_INDEX_DIR", str(site.index))
    assert start_resident(load_settings()) is None  # the module's server runs for this index
    copy = _copy(site, tmp_path)
    monkeypatch.setenv("RAG_INDEX_DIR", str(copy.index))
    monkeypatch.setenv("RAG_UI__SERVE", "false")
    assert start_resident(load_settings()) is None  # switched off
    monkeypatch.delenv("RAG_UI__SERVE")
    started: list[_FakeProc] = []

    def popen(cmd: list[str], **kw: Any) -> _FakeProc:
        started.append(_FakeProc(cmd))
        return started[-1]

    monkeypatch.setattr("app.cmd_ui.subprocess.Popen", popen)
    monkeypatch.setattr("app.cmd_ui.signal.signal", lambda *a: None)
    cli._register()
    res = CliRunner().invoke(cli.app, ["ui"])
    assert res.exit_code == 0, res.output
    serve, ui = started
    assert serve.cmd[-3:] == ["-m", "app.cli", "serve"] and "streamlit" in ui.cmd
    assert serve.terminated  # stopped when the UI exited


def test_a_sigterm_before_serving_is_kept_for_when_serving_starts() -> None:
    """serve.json is written before the server loop starts; a SIGTERM in between had killed the
    process by the default action (exit -15) and left serve.json behind."""
    from app.serve import _Stop

    stop = _Stop()
    stop(signal.SIGTERM, None)
    assert stop.pending
    stop.serving = True
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGTERM, None)
