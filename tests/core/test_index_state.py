"""What the query path reads from disk once and keeps: the resolved index folder (still
following the working folder for a relative `index_dir`) and the manifest (read again when
an ingest or anyone else replaces it). Plus `embedding.titles`: what the encoder sees of a
chunk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core.errors import EmbeddingMismatchError
from core.index import Index
from core.settings import load_settings
from core.types import Record
from ingest.pipeline import ingest


def test_relative_index_dir_follows_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = load_settings(index_dir="rel/index")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.chdir(a)
    assert s.index_path == (a / "rel" / "index").resolve()
    monkeypatch.chdir(b)
    assert s.index_path == (b / "rel" / "index").resolve()
    assert load_settings(index_dir="~/x").index_path == Path(os.path.expanduser("~/x")).resolve()


def test_a_replaced_manifest_is_read_again(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Kettles\n\nA gooseneck kettle pours slowly over the coffee bed.\n")
    s = load_settings()
    index = Index(s)
    ingest([docs], s, index=index)
    index.check_compatible()  # read and kept
    man = index.manifest()
    man["embedding_model"] = "some-other-model"  # a copy: the kept manifest is unchanged
    index.check_compatible()
    tmp = index.manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(man))
    tmp.replace(index.manifest_path)  # as write_manifest does
    with pytest.raises(EmbeddingMismatchError, match="some-other-model"):
        index.check_compatible()
    index.manifest_path.unlink()
    assert index.manifest() == {}
    index.check_compatible()  # no manifest: nothing to refuse


def test_titles_are_embedded_unless_switched_off(tmp_path: Path) -> None:
    r = Record("x", "A gooseneck kettle pours slowly.", "/a.md", title="Kettles")
    assert r.embed_text() == "Kettles\nA gooseneck kettle pours slowly." and r.embed_text(False) == r.text
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Equipment\n\nA gooseneck kettle pours slowly over the coffee bed.\n")
    for titles in (True, False):
        s = load_settings(index_dir=tmp_path / f"index-{titles}")
        s.embedding.titles = titles
        index = Index(s)
        rep = ingest([docs], s, index=index)
        (chunk,) = list(index.docs.iter_records(("chunk",)))
        assert chunk.title == "Equipment"
        stored = index.vectors.get_embeddings([chunk.id])[chunk.id]
        want = index.embedder.embed([chunk.embed_text(titles)])[0]
        other = index.embedder.embed([chunk.embed_text(not titles)])[0]
        assert float(np.dot(stored, want)) > 0.999 > float(np.dot(stored, other))
        assert rep.chars_embedded == len(chunk.embed_text(titles))
        # BM25 indexes the title either way
        assert chunk.id in [i for i, _ in index.keyword.search("equipment", 5)]


def test_cjk_only_chunks_are_embedded_from_their_first_tokens(tmp_path: Path) -> None:
    """A chunk of Chinese prose (no English) is embedded from its first
    `embedding.cjk_max_tokens` tokens; a chunk with English terms whole."""
    docs = tmp_path / "docs"
    docs.mkdir()
    prose = "".join(f"第{i}回，刘备三顾茅庐，诸葛亮隆中对策，天下三分之势由此而定。" for i in range(8))
    (docs / "zh.md").write_text(prose + "\n")
    note = "Transformer 的 self-attention 让每个 token 关注序列中所有位置的信息。"
    (docs / "notes.md").write_text(note * 4 + "\n")
    s = load_settings(index_dir=tmp_path / "index")
    s.embedding.cjk_max_tokens = 32
    index = Index(s)
    ingest([docs], s, index=index)
    chunks = {Path(r.source).name: r for r in index.docs.iter_records(("chunk",))}
    zh, notes = chunks["zh.md"], chunks["notes.md"]
    assert zh.text == prose  # one chunk: CJK-only text is cut at chunk.size_cjk (800), not 200
    stored = index.vectors.get_embeddings([zh.id, notes.id])
    # 32 tokens: 31 CJK characters and punctuation, and the digits 0 and 1 at a quarter each
    prefix = index.embedder.embed([prose[:33]])[0]
    whole = index.embedder.embed([prose])[0]
    assert s.embedding.text_of(zh) == prose[:33]
    assert float(np.dot(stored[zh.id], prefix)) > 0.999 > float(np.dot(stored[zh.id], whole))
    assert s.embedding.text_of(notes) == notes.text
    assert float(np.dot(stored[notes.id], index.embedder.embed([notes.text])[0])) > 0.999


def test_an_index_folder_refuses_another_collection_with_a_message_naming_its_own(tmp_path: Path) -> None:
    """The document store and keyword index belong to the folder: ingesting into another
    collection had found every file unchanged and embedded nothing, and searches read the empty
    collection silently. Ingest and search now refuse, naming the collection the folder holds."""
    from core.errors import IndexError_
    from retrieval.pipeline import retrieve

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Kettles\n\nA gooseneck kettle pours slowly over the coffee bed.\n")
    s = load_settings(index_dir=tmp_path / "index", search={"ltr_self_train": False})
    assert not ingest([docs], s).failed
    other = s.model_copy(update={"collection": "notes"})
    with pytest.raises(IndexError_, match="holds the collection 'documents'.*RAG_COLLECTION=documents"):
        ingest([docs], other)
    with pytest.raises(IndexError_, match="holds the collection 'documents'"):
        retrieve("gooseneck kettle", other)
    assert Index(s).vectors.count() == 1  # the folder's own collection is as it was
    assert retrieve("gooseneck kettle", s).hits
    from app.doctor import index as index_check

    assert index_check(s)["state"] == "ok"
    bad = index_check(other)
    assert bad["state"] == "fail" and "RAG_COLLECTION=documents" in bad["detail"]
    # rag status shows it too (what a user runs first to see what is wrong)
    assert "problem" not in Index(s).status()
    assert "holds the collection 'documents'" in Index(other).status()["problem"]
