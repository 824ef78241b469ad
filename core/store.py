"""The vector store behind one small protocol, chosen by name (`vector_store`) from a registry.

`chroma` (the default, the only one today) is Chroma, embedded (`PersistentClient` under the
index folder) or a server (`chroma run`, `RAG_CHROMA_URL`). Vectors come from our own
embedder, so the collection never runs an embedding function of its own (Chroma's default
would download a model). Metadata filters (`where`) are in Chroma's dialect (equality, $eq,
$ne, $in, $nin, $and, $or); `matches_where` evaluates one against a record."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse

import numpy as np

from core.errors import StoreUnavailableError
from core.registry import choose
from core.settings import Settings
from core.shutdown import close_at_exit
from core.types import Record

log = logging.getLogger(__name__)


@runtime_checkable
class VectorStore(Protocol):
    """Record vectors by id, with the metadata `_metadata` gives a record."""

    @property
    def mode(self) -> str:
        """How it is reached, recorded in the manifest ("embedded" | "server" for Chroma)."""
        ...

    def upsert(self, records: list[Record], embeddings: np.ndarray) -> None:
        ...

    def delete(self, ids: list[str]) -> None:
        ...

    def query(
        self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """Up to `k` (id, cosine similarity) pairs, closest first, among records matching `where`."""
        ...

    def get_embeddings(self, ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those `ids` the store holds."""
        ...

    def all_embeddings(self) -> Iterator[tuple[str, np.ndarray]]:
        """(id, vector) for every record, read in pages."""
        ...

    def any_match(self, where: dict[str, Any]) -> bool:
        """Whether any record matches `where`; a filter the backend refuses raises its own error."""
        ...

    def all_ids(self) -> list[str]:
        ...

    def count(self) -> int:
        ...

    def prefetch(self, dim: int | None) -> threading.Thread | None:
        """Start opening the store (and, given the vectors' `dim`, loading its search
        structures) on a background thread, so that the first real call waits less; None when
        it is open already. The first call that needs the store waits for the thread."""
        ...


def _metadata(r: Record) -> dict[str, Any]:
    md: dict[str, Any] = {
        "source": r.source,
        "kind": r.kind,
        "level": r.level,
        "ext": Path(r.source).suffix.lower().lstrip(".") if r.source else "",
        "start": r.start,
        "end": r.end,
    }
    if r.parent_id:
        md["parent_id"] = r.parent_id
    if r.title:
        md["title"] = r.title[:500]
    if r.page_start is not None:
        md["page_start"] = r.page_start
    return md


# Chroma keeps the vectors written since its last sync in a log and replays them into the HNSW
# graph when a process opens the collection; with a tail of its default 1,000 the replay went
# differently in each process, so the same query returned other neighbours from one `rag search`
# to the next (measured: 4 processes, 4 different top-100s). Syncing every 100 vectors keeps the
# tail to one replay batch, which replays the same way every time; ingest time was the same (50k
# vectors: 41.4 s against 40.1 s). Applies to collections created from now on.
HNSW = {"hnsw": {"space": "cosine", "ef_construction": 200, "ef_search": 100, "sync_threshold": 100,
                 "batch_size": 100}}


def _collection_name(settings: Settings) -> str:
    # In server mode several indexes share one server: the index folder names them apart.
    if settings.chroma_url:
        import hashlib

        tag = hashlib.sha1(str(settings.index_path).encode()).hexdigest()[:8]
        return f"{settings.collection}-{tag}"
    return settings.collection


# --- importing chromadb ---------------------------------------------------------------
_overrides_lock = threading.RLock()  # re-entrant: a client made inside an import cannot deadlock


def _declared(method: Any = None, **_: Any) -> Any:
    """`overrides.override` without its checks: marks the method as an override (which
    `EnforceOverrides` classes look for) and returns it unchanged, as the real one does."""
    if method is None:
        return _declared
    method.__override__ = True
    return method


@contextmanager
def _unchecked_overrides() -> Iterator[None]:
    """chromadb decorates ~120 methods with `overrides.override`, which checks each one's
    signature against its base class when the class is defined: a development-time assertion
    that took ~0.2 s of chromadb's ~0.9 s import on 2 cores (cold `rag search` ~2 s). It is
    skipped while chromadb's modules load (here and when a client loads its own); the same
    classes and methods result, and the library's decorator is put back for anyone else."""
    try:
        import overrides
    except ImportError:  # pragma: no cover - another chromadb that does not use it
        yield
        return
    with _overrides_lock:
        saved = overrides.override, overrides.overrides
        overrides.override = overrides.overrides = _declared
        try:
            yield
        finally:
            overrides.override, overrides.overrides = saved


def import_chromadb() -> Any:
    """The chromadb module, imported without the `@override` checks (`_unchecked_overrides`)."""
    import sys

    if "chromadb" in sys.modules:
        # A plain import: while another thread is still importing it, this waits for it.
        import chromadb
    else:
        with _unchecked_overrides():
            import chromadb
    return chromadb


def release_clients() -> None:
    """Stop Chroma's cached clients, as a normal exit does: the embedded store's Rust side is
    dropped and writes what it holds, and a client made after this reads the collection as it is
    on disk now (`rag serve` after an ingest; core/shutdown.py before a command's quick exit)."""
    import sys

    if "chromadb" not in sys.modules:
        return
    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ImportError:  # pragma: no cover - another chromadb layout: nothing cached that we know of
        return
    for system in list(SharedSystemClient._identifier_to_system.values()):
        try:
            system.stop()
        except Exception as e:  # noqa: BLE001 - a half-stopped client is dropped all the same
            log.info("stopping a Chroma client: %s", e)
    SharedSystemClient.clear_system_cache()


@dataclass
class ChromaStore:
    settings: Settings
    _collection: Any = field(default=None, init=False, repr=False)
    # `prefetch` opens the collection on another thread; one lock so that only one opens it.
    _opening: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _prefetching: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def mode(self) -> str:
        return "server" if self.settings.chroma_url else "embedded"

    def _client(self) -> Any:
        chromadb = import_chromadb()
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        if self.settings.chroma_url:
            u = urlparse(self.settings.chroma_url)
            try:
                client = chromadb.HttpClient(
                    host=u.hostname or "127.0.0.1", port=u.port or 8000, ssl=u.scheme == "https",
                    settings=chroma_settings,
                )
                client.heartbeat()
            except Exception as e:
                raise StoreUnavailableError(
                    f"Chroma server at {self.settings.chroma_url} is unreachable ({type(e).__name__}); "
                    "start it with `chroma run --host 127.0.0.1 --port PORT --path DIR` or unset "
                    "RAG_CHROMA_URL to use the embedded store."
                ) from e
            return client
        path = self.settings.index_path / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        close_at_exit(release_clients)  # core/shutdown.py: stopped before a command's quick exit
        with _unchecked_overrides():  # the client imports its segment and API modules now
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)

    @property
    def collection(self) -> Any:
        with self._opening:
            if self._collection is None:
                self._collection = self._open()
            return self._collection

    def _open(self) -> Any:
        return self._client().get_or_create_collection(
            name=_collection_name(self.settings), configuration=HNSW, embedding_function=None
        )

    def prefetch(self, dim: int | None) -> threading.Thread | None:
        """Open the collection and, embedded, load its HNSW graph on a background thread while
        a query is encoded (retrieval/search.py): over 100k vectors the graph load took 0.3 s of
        a cold `rag search`, and the query releases the GIL throughout it (a Python thread
        beside it ran at full speed); 1.95 -> 1.80 s median in 12 alternating runs. An ingest
        does not use it: there the load competed with the encoder for both cores (one-file
        update 2.31 -> 2.41 s median, 14 alternating runs). Errors are left for the caller's own
        first call.

        chromadb is imported here, on the caller's thread: an import holds the GIL, and beside
        it the caller's SQLite reads (which give the GIL back at every row) ran 20x slower."""
        if self._collection is not None or (self._prefetching is not None and self._prefetching.is_alive()):
            return None
        import_chromadb()

        def run() -> None:
            # The caller's first use of `collection` waits for the lock: nothing reaches the
            # collection while its graph is loading.
            with self._opening:
                try:
                    if self._collection is None:
                        self._collection = self._open()
                    if dim and self.mode == "embedded":
                        # A one-result query is the cheapest call that loads the graph.
                        self._collection.query(query_embeddings=[np.full(dim, dim**-0.5, dtype=np.float32)],
                                               n_results=1, include=[])
                except Exception as e:  # noqa: BLE001 - the caller's own first call reports it
                    log.debug("store prefetch failed: %s", e)

        t = self._prefetching = threading.Thread(target=run, name="rag-store-open", daemon=True)
        t.start()
        return t

    def upsert(self, records: list[Record], embeddings: np.ndarray) -> None:
        if not records:
            return
        step = 2000
        for i in range(0, len(records), step):
            part = records[i : i + step]
            self.collection.upsert(
                ids=[r.id for r in part],
                embeddings=embeddings[i : i + step],
                metadatas=[_metadata(r) for r in part],
            )

    def delete(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 2000):
            if ids[i : i + 2000]:
                self.collection.delete(ids=ids[i : i + 2000])

    def query(
        self, vector: np.ndarray, k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        # No count() first: it costs a round trip per query, and Chroma returns fewer than
        # `n_results` (none for an empty collection) when it holds fewer.
        if k <= 0:
            return []
        res = self.collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            where=where or None,
            include=["distances"],
        )
        ids = res["ids"][0]
        dists = res["distances"][0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]

    def get_embeddings(self, ids: list[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        res = self.collection.get(ids=ids, include=["embeddings"])
        pairs = zip(res["ids"], res["embeddings"], strict=True)
        return {i: np.asarray(e, dtype=np.float32) for i, e in pairs}

    def all_embeddings(self, page: int = 5000) -> Iterator[tuple[str, np.ndarray]]:
        offset = 0
        while True:
            res = self.collection.get(include=["embeddings"], limit=page, offset=offset)
            if not res["ids"]:
                return
            yield from zip(res["ids"], np.asarray(res["embeddings"], dtype=np.float32), strict=True)
            offset += len(res["ids"])
            if len(res["ids"]) < page:
                return

    def any_match(self, where: dict[str, Any]) -> bool:
        return bool(self.collection.get(where=where, limit=1, include=[])["ids"])

    def all_ids(self) -> list[str]:
        return list(self.collection.get(include=[])["ids"])

    def count(self) -> int:
        return int(self.collection.count())


REGISTRY: dict[str, Callable[[Settings], VectorStore]] = {"chroma": ChromaStore}


def get_store(settings: Settings) -> VectorStore:
    """The configured vector store (`vector_store`)."""
    return choose(REGISTRY, settings.vector_store, "vector_store")(settings)


def matches_where(r: Record, where: dict[str, Any]) -> bool:
    """Evaluate a Chroma metadata filter against a record (equality, $eq, $ne, $in, $nin, $and, $or)."""
    md = _metadata(r)
    for key, cond in where.items():
        if key == "$and":
            if not all(matches_where(r, c) for c in cond):
                return False
            continue
        if key == "$or":
            if not any(matches_where(r, c) for c in cond):
                return False
            continue
        val = md.get(key)
        if isinstance(cond, dict):
            for op, arg in cond.items():
                ok = {"$eq": val == arg, "$ne": val != arg,
                      "$in": val in arg if isinstance(arg, list) else False,
                      "$nin": val not in arg if isinstance(arg, list) else True}.get(op, False)
                if not ok:
                    return False
        elif val != cond:
            return False
    return True
