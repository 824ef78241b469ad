"""The `rag` command as a user runs it: a real subprocess, real index."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SAMPLE


def rag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})}, cwd=os.getcwd(),
    )


def test_ingest_status_search_on_sample(tmp_path: Path) -> None:
    r = rag("ingest", str(SAMPLE))
    assert r.returncode == 0, r.stderr
    assert "3 added" in r.stdout and "0 failed" in r.stdout
    st = json.loads(rag("status", "--json").stdout)
    assert st["exists"] and st["documents"] == 3 and st["chunks"] >= 5
    assert st["embedding_model"] == "all-MiniLM-L6-v2" and st["records_by_kind"] == {"chunk": st["chunks"]}
    out = json.loads(rag("search", "grind size for a french press", "-k", "3", "--json").stdout)
    assert len(out["hits"]) == 3
    top = out["hits"][0]
    assert {"score", "source", "start", "end", "text", "scores"} <= set(top)
    assert "coarse" in top["text"].lower() or "french press" in top["text"].lower()
    assert top["start"] <= top["hit_start"] < top["hit_end"] <= top["end"]  # the chunk inside its window
    zh = json.loads(rag("search", "绿茶的水温", "-k", "1", "--json").stdout)
    assert "绿茶" in zh["hits"][0]["text"]
    again = rag("ingest", str(SAMPLE))
    assert "3 unchanged" in again.stdout and "0 chunks written" in again.stdout


def test_failures_give_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    r = rag("ingest", str(tmp_path / "nope"))
    assert r.returncode == 1 and "no such file or folder" in r.stderr + r.stdout
    r = rag("search", "anything")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("Error: No index at") and "rag ingest" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_empty_question_or_a_k_below_one_is_one_message_and_exit_1(tmp_path: Path) -> None:
    """An empty question had been searched as such (the nearest passages came back, `rag ask`
    refused with a support figure); `-k 0` had meant the default, `-k -3` no results."""
    assert rag("ingest", str(SAMPLE / "coffee-brewing.md")).returncode == 0
    cases = ((("search", ""), "question is empty"), (("ask", "   "), "question is empty"),
             (("search", "coffee", "-k", "0"), "k is 0"), (("search", "coffee", "-k", "-3"), "k is -3"),
             (("ask", "coffee", "-k", "0"), "k is 0"))
    for args, said in cases:
        r = rag(*args)
        assert r.returncode == 1 and said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert r.stdout.strip() == ""


def test_index_built_with_another_model_is_refused(tmp_path: Path) -> None:
    assert rag("ingest", str(SAMPLE / "coffee-brewing.md")).returncode == 0
    man = Path(os.environ["RAG_INDEX_DIR"]) / "manifest.json"
    data = json.loads(man.read_text())
    data["embedding_model"] = "some-other-model"
    man.write_text(json.dumps(data))
    r = rag("search", "coffee")
    assert r.returncode == 1 and "some-other-model" in r.stderr and "Traceback" not in r.stderr


def test_doctor_reports_embedding_and_store() -> None:
    r = rag("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert (
        checks["embedding model"]["state"] == "ok"
        and "all-MiniLM-L6-v2" in checks["embedding model"]["detail"]
    )
    # both encoders that stand in for sentence-transformers were compared with it
    detail = checks["embedding model"]["detail"]
    assert "encoded in NumPy (cosine" in detail
    from core.torch_encoder import resolve_precision

    precision = resolve_precision("auto", "cpu")  # what this machine's CPU gets by default
    assert f"batches encoded in torch ({precision}) without sentence-transformers (cosine" in detail
    assert checks["vector store"]["state"] == "ok"
    assert checks["dictionary"]["state"] == "ok" and "CC-CEDICT" in checks["dictionary"]["detail"]


def test_a_usage_error_is_one_message_and_exit_code_2() -> None:
    """An unknown option or a bad value: Typer's usage message and exit code 2, no traceback
    (Typer parses with its own copy of click, whose errors are not click's)."""
    for args in (("search", "coffee", "--bogus"), ("search", "coffee", "-k", "many")):
        r = rag(*args)
        assert r.returncode == 2, r.stderr
        assert "Usage:" in r.stderr and "search [OPTIONS]" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr, r.stderr


def test_commands_end_with_their_index_closed(tmp_path: Path) -> None:
    """`rag ingest` / `rag search` end by a quick exit (core/shutdown.py): what they wrote is
    closed as a normal exit closes it (the document store's WAL log folded back and removed),
    their whole output arrives through a pipe, and the next process reads a complete index."""
    env = {"RAG_INDEX_DIR": str(tmp_path / "idx")}
    r = rag("ingest", str(SAMPLE), "--no-progress", env=env)
    assert r.returncode == 0 and "3 added" in r.stdout, r.stderr
    assert (tmp_path / "idx" / "docs.sqlite").exists() and not (tmp_path / "idx" / "docs.sqlite-wal").exists()
    out = rag("search", "grind size for a french press", "-k", "3", "--json", env=env)
    assert len(json.loads(out.stdout)["hits"]) == 3  # the JSON is whole: flushed before the process ended
    assert not (tmp_path / "idx" / "docs.sqlite-wal").exists()
    st = json.loads(rag("status", "--json", env=env).stdout)
    assert st["vectors"] == st["chunks"] >= 5


def test_a_hit_is_previewed_from_the_chunk_that_matched() -> None:
    from app.cmd_index import _hit_line

    text = "## Beans\n\nBuy whole beans.\n\n## French press\n\nSteep for four minutes."
    at = text.index("## French press")
    hit = {"score": 1.0, "source": "/d/coffee.md", "title": "Coffee > French press", "start": 100,
           "end": 100 + len(text), "hit_start": 100 + at, "text": text}
    preview = _hit_line(1, hit).splitlines()[1].strip()
    assert preview == "… ## French press Steep for four minutes."
    whole = _hit_line(1, {**hit, "hit_start": 100}).splitlines()[1].strip()  # not widened
    assert whole.startswith("## Beans Buy whole beans.")
