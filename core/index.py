"""The index on disk: document store (SQLite), vector store (Chroma), keyword index
(BM25, core/keyword.py), the tables found in documents (SQLite, core/tables.py) and the
manifest that says how they were built. Ingest writes it, retrieval reads it; both reach it
through this one object."""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from core.docstore import DocStore
from core.errors import EmbeddingMismatchError, IndexError_
from core.graph import GRAPH_FILE, GraphStore
from core.keyword import KeywordIndex
from core.models import Embedder, get_embedder
from core.settings import Settings
from core.store import VectorStore, get_store
from core.tables import TableStore
from core.versions import package_versions

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
# Records a keyword-index rebuild re-tokenises per second, for the estimate it prints: 100k
# English chunks took 75 s on 2 cores (README, scale); Chinese text is slower (jieba).
REBUILD_RECORDS_PER_S = 1300


def _duration(seconds: float) -> str:
    """"a few seconds", "40 s", "3 min": an estimate, for "about ..."."""
    if seconds < 5:
        return "a few seconds"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


@dataclass
class Index:
    settings: Settings

    @property
    def path(self) -> Path:
        return self.settings.index_path

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @cached_property
    def docs(self) -> DocStore:
        return DocStore(self.path / "docs.sqlite")

    @cached_property
    def tables(self) -> TableStore:
        """Tables found at ingest, as real SQLite tables (core/tables.py); read-only at query time."""
        return TableStore(self.path / "tables.sqlite")

    @cached_property
    def vectors(self) -> VectorStore:
        return get_store(self.settings)

    @cached_property
    def keyword(self) -> KeywordIndex:
        kw = KeywordIndex(self.path / "bm25")
        if kw.path.exists() and not kw.is_current() and self.docs.path.exists():
            # Written by an older tokenizer or format (e.g. a Chinese corpus indexed before the
            # dictionary translations): BM25 is derived data, so rebuild it from the
            # document store rather than refuse every query until the user re-ingests. It is a
            # write, so it takes the writer lock (IndexBusyError while an ingest runs: that
            # ingest rebuilds it anyway).
            from core.lock import write_lock

            with write_lock(self.path, "a keyword index rebuild"):
                if not kw.is_current():
                    n = self.docs.count()
                    # it re-tokenises every record (75 s for 100k English chunks on 2 cores): say
                    # what is happening and for how long, once, rather than hang silently
                    log.warning("rebuilding the BM25 index at %s for %d records (written by another "
                                "version of the tokenizer or index format; about %s, once)", kw.path, n,
                                _duration(n / REBUILD_RECORDS_PER_S))
                    t0 = time.perf_counter()
                    kw.build(self.docs.keyword_rows())  # not current: every text is read
                    log.warning("BM25 index rebuilt in %.1f s", time.perf_counter() - t0)
        return kw

    @property
    def graph(self) -> GraphStore | None:
        """The knowledge graph `rag ingest --graph` built (core/graph.py), or None: opened once,
        looked for on every call (an ingest may build it while a server holds this Index)."""
        path = self.path / GRAPH_FILE
        if not path.exists():
            return None
        store: GraphStore | None = self.__dict__.get("_graph")
        if store is None:
            store = self.__dict__["_graph"] = GraphStore(path)
        return store

    @cached_property
    def embedder(self) -> Embedder:
        return get_embedder(self.settings.embedding)

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest_read())  # a copy callers may change

    @property
    def vector_dim(self) -> int | None:
        """The stored vectors' dimension, from the manifest (None before the first ingest);
        read on every query, so without `manifest`'s copy."""
        dim = self._manifest_read().get("embedding_dim")
        return int(dim) if dim else None

    def _manifest_read(self) -> dict[str, Any]:
        """The manifest as last written, shared: read again only when the file changed (every
        query checks it; it is replaced, never rewritten in place)."""
        try:
            st = os.stat(self.manifest_path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self.__dict__.get("_manifest")
        if cached is None or cached[0] != stamp:
            cached = (stamp, json.loads(self.manifest_path.read_text()))
            self.__dict__["_manifest"] = cached
        data: dict[str, Any] = cached[1]  # shared: read it, never change it
        return data

    def check_compatible(self) -> None:
        """Refuse an index built with another embedding model or format, or written to another
        collection."""
        man = self._manifest_read()
        if not man:
            return
        if man.get("format_version") != INDEX_FORMAT:
            raise IndexError_(
                f"The index at {self.path} has format {man.get('format_version')}, this version reads "
                f"{INDEX_FORMAT}; delete the folder and run `rag ingest` again."
            )
        written = man.get("collection")
        if written and written != self.settings.collection:
            # The document store and keyword index beside it are the folder's, not the
            # collection's: ingesting into another collection found every file "unchanged" and
            # embedded nothing, and searches read an empty collection without a word.
            raise IndexError_(
                f"The index at {self.path} holds the collection '{written}', but settings name "
                f"'{self.settings.collection}'; one index folder holds one collection: set collection "
                f"back (collection = \"{written}\" in rag.toml, or RAG_COLLECTION={written}), or use "
                "another RAG_INDEX_DIR for a new collection."
            )
        built = man.get("embedding_model")
        if built and built != self.embedder.name:
            raise EmbeddingMismatchError(
                f"The index at {self.path} was built with embedding model '{built}' but settings name "
                f"'{self.embedder.name}'; set embedding.model back, or use another RAG_INDEX_DIR and "
                "re-ingest."
            )

    def write_manifest(self, **extra: Any) -> None:
        man = self.manifest()
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        man.update(
            {
                "format_version": INDEX_FORMAT,
                "embedding_model": self.embedder.name,
                "embedding_dim": self.embedder.dim,
                "chunk": self.settings.chunk.model_dump(),
                "vector_store": self.vectors.mode,
                "collection": self.settings.collection,
                "versions": package_versions(("localrag", "chromadb", "sentence-transformers", "bm25s")),
                "updated_at": now,
            }
        )
        man.setdefault("created_at", now)
        man.update(extra)
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(f".{os.getpid()}.tmp")  # never shared by two processes
        tmp.write_text(json.dumps(man, indent=2))
        tmp.replace(self.manifest_path)

    def rebuild_keyword(self, changed: set[str] | None = None) -> int:
        """Bring the keyword index in step with the document store, reading back only the
        texts it does not already hold. `changed`: the only files whose records changed since
        the index was built (an ingest's added, changed and removed files), whose order is then
        merged into the saved one instead of read back whole (`KeywordIndex.merged_rows`)."""
        rows = self.keyword.merged_rows(self.docs, changed) if changed is not None else None
        self.keyword.build(rows if rows is not None else self.docs.keyword_rows(self.keyword.known_digests()))
        return len(self.keyword.ids)

    def status(self) -> dict[str, Any]:
        man = self.manifest()
        out: dict[str, Any] = {
            "index_dir": str(self.path),
            "exists": bool(man),
            "vector_store": self.vectors.mode,
            "chroma_url": self.settings.chroma_url,
            "embedding_model": man.get("embedding_model"),
            "created_at": man.get("created_at"),
            "updated_at": man.get("updated_at"),
        }
        if man:
            out["documents"] = len(self.docs.files())
            out["records_by_kind"] = self.docs.counts_by_kind()
            out["chunks"] = out["records_by_kind"].get("chunk", 0)
            out["vectors"] = self.vectors.count()
            out["levels"] = {k: self.docs.counts_by_level(k) for k in out["records_by_kind"]}
            for k in ("raptor",):
                if k in man:
                    out[k] = man[k]
            try:  # what every command would refuse it for (another collection, model, format)
                self.check_compatible()
            except IndexError_ as e:
                out["problem"] = str(e)
        return out
