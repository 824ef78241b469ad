"""`rag serve`: a resident process that keeps the embedding model, Chroma and the keyword index
loaded, so `rag search` and `rag ask` answer in milliseconds instead of loading them each time.

Private: bound to 127.0.0.1 only, and every request must carry the random token written to
`<index_dir>/serve.json` (mode 0600), so another local user, or a web page that posts to
localhost, gets 403. Calls into the pipeline are serialised by one lock (it is not known to
be thread-safe); a request waits for the one before it. Before each request the index files are
compared with what was loaded, and everything loaded from them is dropped when an ingest changed
them: the server never answers from an index older than the one on disk."""

from __future__ import annotations

import atexit
import hmac
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import serve_client as sc
from core.errors import RagError

if TYPE_CHECKING:
    from core.index import Index
    from core.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # a query is a line of text; anything bigger is not one of our clients
WATCH_S = 2.0  # how often the server checks that its serve.json is still there
WARM_QUERY = "warm up the encoder 预热 2024"  # English, Chinese (jieba) and digits: every tokenizer path


class ServeError(RagError):
    """`rag serve` cannot start (another one runs for this index, the port is taken)."""


class BadRequest(ValueError):
    pass


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def index_signature(folders: list[Path]) -> tuple[Any, ...]:
    """What an ingest changes last in each index folder: the manifest it commits and the BM25 link
    it repoints. Not docs.sqlite: queries write the translation cache there."""
    sig: list[Any] = []
    for folder in folders:
        sig.append(_stamp(folder / "manifest.json"))
        bm25 = folder / "bm25"
        try:
            sig.append(os.readlink(bm25))
        except OSError:  # not a link (an older index) or missing
            try:
                sig.append(bm25.stat().st_mtime_ns)
            except OSError:
                sig.append(None)
    return tuple(sig)


def chroma_signature(folders: list[Path]) -> tuple[Any, ...]:
    """Chroma's database, which an ingest changes per batch (so an interrupted one counts too).
    Opening a client writes to it as well, so it is taken after each request, not before."""
    return tuple(_stamp(folder / "chroma" / "chroma.sqlite3") for folder in folders)


def _opt(payload: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    v = payload.get(key)
    if v is not None and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
        raise BadRequest(f"{key} must be {kind}, not {type(v).__name__}")
    return v


@dataclass
class Resident:
    """What stays loaded between requests, and the lock that serialises them."""

    settings: Settings
    lock: threading.Lock = field(default_factory=threading.Lock)
    index: Index | None = None
    signature: tuple[Any, ...] = ()
    chroma: tuple[Any, ...] = ()  # chroma_signature after the last request
    counts: dict[str, int] = field(default_factory=lambda: {"search": 0, "ask": 0, "reloads": 0})

    def folders(self) -> list[Path]:
        """The main index and every routable collection's own index folder."""
        out = [self.settings.index_path]
        for c in self.settings.route.collections:
            if c.index_dir is not None:
                out.append(c.index_dir.expanduser().resolve())
        return out

    def current_index(self) -> Index:
        """The loaded index, reloaded first when the files on disk changed. Called under the lock."""
        from core.index import Index

        folders = self.folders()
        sig = index_signature(folders)  # taken before loading: a change during the load reloads again
        if self.index is not None and sig == self.signature and chroma_signature(folders) == self.chroma:
            return self.index
        if self.index is not None:
            log.info("the index changed on disk; dropping what was loaded from it")
            self.counts["reloads"] += 1
            if "docs" in self.index.__dict__:  # a cached_property that was loaded
                self.index.docs.close()
            from core.store import release_clients

            release_clients()
        self.index, self.signature = Index(self.settings), sig
        return self.index

    @contextmanager
    def using(self, request: str | None) -> Iterator[Index]:
        """The current index, for one request at a time."""
        with self.lock:
            if request:
                self.counts[request] += 1
            try:
                yield self.current_index()
            finally:
                self.chroma = chroma_signature(self.folders())

    def search(self, payload: dict[str, Any]) -> dict[str, Any]:
        from app.cmd_index import search_result, skipped

        query = payload.get("query")
        if not isinstance(query, str):
            raise BadRequest("query must be a string")
        k = _opt(payload, "k", int)
        k = 5 if k is None else k  # `rag search -k`'s default
        mode = _opt(payload, "mode", str)
        coarse, ltr = _opt(payload, "coarse", bool), _opt(payload, "ltr", bool)
        with self.using("search") as index:
            return search_result(query, self.settings, k=k, mode=mode, skip=skipped(coarse, ltr), index=index)

    def ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        from app.cmd_ask import ask_result

        question = payload.get("question")
        if not isinstance(question, str):
            raise BadRequest("question must be a string")
        strategy, k = _opt(payload, "strategy", str), _opt(payload, "k", int)
        with self.using("ask") as index:
            return ask_result(question, self.settings, strategy=strategy, k=k, index=index)

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "index_dir": str(self.settings.index_path), **self.counts}

    def warm_up(self) -> str:
        """One retrieval, so the encoder, Chroma, BM25, jieba and the ranker are loaded before the
        first request; and the LLM backend chosen (Ollama probed). A missing or empty index is not
        an error: the server then loads it on the first request after an ingest."""
        from app.cmd_ask import ask_result
        from app.cmd_index import search_result
        from core.llm import get_llm
        from retrieval.respond import choose_mode

        t0 = time.perf_counter()
        with self.using(None) as index:
            try:
                search_result(WARM_QUERY, self.settings, index=index)
            except RagError as e:
                return f"not warmed up ({e})"
            # sentence-transformers too (a few seconds, once): with it loaded, the dozens of sentences
            # an extractive answer scores are encoded in one torch batch, not one by one in NumPy
            index.embedder.load()
            try:
                # an extractive answer makes no LLM call, but its sentence scoring loads more (about
                # 1 s on 2 cores); a generative one would spend seconds generating, so it is not tried
                if choose_mode(self.settings, get_llm(self.settings))[0] == "extractive":
                    ask_result(WARM_QUERY, self.settings, index=index)
            except RagError as e:
                log.info("rag ask not warmed up: %s", e)
        return f"warmed up in {time.perf_counter() - t0:.1f}s"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a client that hangs up mid-request does not keep the process alive
    resident: Resident
    token: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "rag-serve"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), format % args)  # not to stderr on every request

    def _send(self, status: int, body: dict[str, Any]) -> None:
        # ASCII on the wire: a lone surrogate in a file name survives the round trip
        data = json.dumps(body, default=str).encode("ascii")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        got = self.headers.get(sc.TOKEN_HEADER, "")
        if hmac.compare_digest(got.encode("utf-8", "replace"), self.server.token.encode()):
            return True
        self._send(403, {"error": f"missing or wrong {sc.TOKEN_HEADER}"})
        return False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorised():
            return
        if self.path != "/status":
            self._send(404, {"error": f"no such endpoint {self.path}"})
            return
        self._send(200, self.server.resident.status())

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorised():
            return
        resident = self.server.resident
        route = {"/search": resident.search, "/ask": resident.ask}.get(self.path)
        if route is None:
            self._send(404, {"error": f"no such endpoint {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            status = 413 if length > MAX_BODY else 400
            self._send(status, {"error": "a JSON body of at most 1 MiB is required"})
            return
        t0 = time.perf_counter()
        try:
            payload = json.loads(self.rfile.read(length))
            if not isinstance(payload, dict):
                raise BadRequest("the body must be a JSON object")
            result = route(payload)
        except RagError as e:  # the user's error: the client prints it as its own
            self._send(422, {"error": str(e), "kind": type(e).__name__})
            return
        except (BadRequest, ValueError) as e:
            self._send(400, {"error": str(e)})
            return
        except Exception as e:  # a bug: the client answers in process, where it shows in full
            log.exception("rag serve: %s failed", self.path)
            self._send(500, {"error": f"{type(e).__name__}: {e}"})
            return
        log.info("%s answered in %.1f ms", self.path, (time.perf_counter() - t0) * 1000)
        self._send(200, result)


class _Stop:
    """SIGTERM, from before serve.json is written: while serving, out of `serve_forever` (into its
    cleanup); before that, remembered and acted on when serving starts. With the handler set
    only once serving had started, a SIGTERM right after serve.json appeared killed the process
    by the default action and left the file behind (seen in CI: `rag serve` exited -15)."""

    def __init__(self) -> None:
        self.serving = False
        self.pending = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.serving:
            raise KeyboardInterrupt  # out of serve_forever, into its finally
        self.pending = True


@dataclass
class Running:
    """A started server: where it listens and what it wrote."""

    server: _Server
    info: sc.ServeInfo
    path: Path
    stopped: threading.Event = field(default_factory=threading.Event)
    stop: _Stop = field(default_factory=_Stop)  # SIGTERM's handler, set before serve.json

    def close(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.server.server_close()
        if sc.remove_info(self.path, self.info.token):
            log.info("removed %s", self.path)

    def watch(self) -> None:
        """Put serve.json back if something removed it while the index folder is still there
        (clients find the server only through it)."""
        while not self.stopped.wait(WATCH_S):
            if not self.path.exists() and self.path.parent.is_dir():
                log.info("%s was removed; writing it again", self.path)
                sc.write_info(self.path, self.info)


def _refuse_second(path: Path) -> None:
    info = sc.read_info(path)
    if info is not None and info.pid != os.getpid() and sc.pid_alive(info.pid):
        raise ServeError(
            f"rag serve already runs for the index at {path.parent} (pid {info.pid}, port {info.port}); "
            f"stop it first (`kill {info.pid}`) or use it as it is."
        )


def start(settings: Settings, port: int = 0) -> tuple[Running, str]:
    """Bind, warm up, then write serve.json (clients find the server only once it is warm)."""
    folder = settings.index_path
    path = folder / sc.SERVE_FILE
    _refuse_second(path)
    if not 0 <= port < 65536:
        raise ServeError(f"--port {port} is not a TCP port; choose one between 1 and 65535, "
                         "or 0 for any free one.")
    try:
        server = _Server(("127.0.0.1", port), _Handler)
    except OSError as e:
        raise ServeError(f"cannot listen on 127.0.0.1:{port} ({e.strerror or e}); choose another --port, "
                         "or 0 for any free one.") from None
    resident = Resident(settings)
    server.resident, server.token = resident, secrets.token_hex(32)
    try:
        warm = resident.warm_up()
        folder.mkdir(parents=True, exist_ok=True)
        _refuse_second(path)  # another one may have started while this one warmed up
        info = sc.ServeInfo(pid=os.getpid(), port=server.server_address[1], token=server.token,
                            fingerprint=sc.settings_fingerprint(),
                            started_at=datetime.now(UTC).isoformat(timespec="seconds"))
        stop = _Stop()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
        sc.write_info(path, info)
    except BaseException:
        server.server_close()
        raise
    return Running(server, info, path, stop=stop), warm


def serve_forever(running: Running) -> None:
    """Answer requests until SIGINT or SIGTERM; serve.json is removed however the process ends."""
    atexit.register(running.close)
    stop = running.stop
    main = threading.current_thread() is threading.main_thread()  # only it may set handlers
    if main:
        signal.signal(signal.SIGTERM, stop)  # `start` set it already when it ran here
    threading.Thread(target=running.watch, name="serve-watch", daemon=True).start()
    try:
        stop.serving = True
        if stop.pending:  # a SIGTERM came between serve.json and now
            raise KeyboardInterrupt
        running.server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
