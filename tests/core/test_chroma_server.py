"""Client-server mode against a real `chroma run` on loopback."""

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.errors import StoreUnavailableError
from core.index import Index
from core.settings import load_settings
from ingest.pipeline import ingest
from retrieval.pipeline import retrieve
from retrieval.state import Plan


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-data")
    proc = subprocess.Popen([exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("chroma run did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ingest_and_search_through_a_chroma_server(tmp_path: Path, chroma_server: str) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.md").write_text("The observatory telescope tracks distant comets at night.")
    (d / "b.md").write_text("Bakers knead sourdough before dawn.")
    s = load_settings(chroma_url=chroma_server)
    r = ingest([d], s)
    assert r.count("added") == 2
    idx = Index(s)
    assert idx.vectors.mode == "server" and idx.vectors.count() == 2
    assert not (s.index_path / "chroma").exists()  # vectors live on the server
    hits = retrieve("comet telescope", s, k=1, plan=Plan(mode="dense")).hits
    assert hits[0].record.source.endswith("a.md")
    # A second index on the same server gets its own collection.
    s2 = load_settings(chroma_url=chroma_server, index_dir=tmp_path / "other")
    (d / "c.md").write_text("Unrelated.")
    ingest([d / "c.md"], s2)
    assert Index(s2).vectors.count() == 1 and Index(s).vectors.count() == 2


def test_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    s = load_settings(chroma_url=f"http://127.0.0.1:{_free_port()}")
    (tmp_path / "a.md").write_text("text")
    with pytest.raises(StoreUnavailableError, match="unreachable.*chroma run"):
        ingest([tmp_path / "a.md"], s)


@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_a_query_asking_more_than_the_store_holds(tmp_path: Path, chroma_server: str, mode: str) -> None:
    """The vector store queries without counting first (one round trip less per query):
    asking for more neighbours than it holds returns what it holds, an empty store none."""
    import numpy as np

    from core.types import Record

    s = load_settings(index_dir=str(tmp_path / "idx"), chroma_url=chroma_server if mode == "server" else None)
    vs = Index(s).vectors
    q = np.ones(384, dtype=np.float32) / np.sqrt(384)
    assert vs.query(q, 10) == []
    recs = [Record(f"r{i}", f"text {i}", "/x.md") for i in range(3)]
    vecs = np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32)
    vs.upsert(recs, vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    got = vs.query(q, 10)
    assert sorted(i for i, _ in got) == ["r0", "r1", "r2"]
    assert vs.query(q, 10, where={"source": "/elsewhere.md"}) == []
