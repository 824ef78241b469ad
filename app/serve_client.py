"""The client side of `rag serve`: find the resident server of this index and ask it.

Standard library only, and no settings object: the whole point is a `rag search` process that
starts, asks and prints in a fraction of a second, and pydantic-settings alone costs about
0.25 s to import. So the index folder is found the way `core.settings` finds it (environment,
then `rag.toml`, then the default), and "the same settings" is a fingerprint of everything the
settings are read from (every RAG_* variable, the settings file's bytes, the working folder):
stricter than the settings themselves, which only costs an in-process answer, never a wrong one.

`<index_dir>/serve.json` (mode 0600, written by the server) names the server's pid, port, token
and fingerprint. Any doubt about it (missing, not ours, another fingerprint, a dead pid, a
refused connection, a timeout, a server error) means: answer in process, as without a server."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVE_FILE = "serve.json"
PROTOCOL = 1  # bumped when requests or answers change shape: an older server is then ignored
TOKEN_HEADER = "X-Rag-Token"
DEFAULT_INDEX_DIR = "data/index"  # core.settings.Settings.index_dir


class ServerError(Exception):
    """The server answered a request with an error the caller should report as its own."""


@dataclass(frozen=True)
class ServeInfo:
    """The contents of serve.json."""

    pid: int
    port: int
    token: str
    fingerprint: str
    started_at: str
    protocol: int = PROTOCOL

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServeInfo:
        return cls(pid=int(d["pid"]), port=int(d["port"]), token=str(d["token"]),
                   fingerprint=str(d["fingerprint"]), started_at=str(d.get("started_at", "")),
                   protocol=int(d.get("protocol", 0)))


def config_file() -> Path:
    return Path(os.environ.get("RAG_CONFIG", "rag.toml"))  # as core.settings._config_file


def index_dir() -> Path | None:
    """The index folder `load_settings().index_path` names, read without pydantic; None when the
    settings file cannot be read (the in-process path then reports it properly)."""
    raw: object = None
    for k, v in os.environ.items():  # pydantic-settings matches names case-insensitively
        if k.upper() == "RAG_INDEX_DIR":
            raw = v
    if raw is None:
        cfg = config_file()
        if cfg.is_file():
            import tomllib

            try:
                raw = tomllib.loads(cfg.read_text(encoding="utf-8")).get("index_dir")
            except (OSError, ValueError):
                return None
    if raw is None:
        raw = DEFAULT_INDEX_DIR
    if not isinstance(raw, str):
        return None
    try:
        return Path(raw).expanduser().resolve()
    except (OSError, RuntimeError):
        return None


def settings_fingerprint() -> str:
    """A digest of every input the settings are read from, taken the same way by server and client."""
    env = sorted((k.upper(), v) for k, v in os.environ.items() if k.upper().startswith("RAG_"))
    cfg = config_file()
    try:
        data = cfg.read_bytes()
    except OSError:
        data = b""
    h = hashlib.sha256(json.dumps({"env": env, "config": str(cfg), "cwd": os.getcwd(),
                                   "protocol": PROTOCOL}).encode("utf-8", "surrogateescape"))
    h.update(data)
    return h.hexdigest()[:32]


def pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (killed, not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, though not a server we started
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:][:1] != "Z"
    except (OSError, ValueError):
        return True  # no /proc (not Linux): os.kill said it exists


def read_info(path: Path) -> ServeInfo | None:
    """serve.json at `path` when it is a readable file of this user in the current format."""
    try:
        st = path.stat()
        if st.st_uid != os.getuid():  # planted by someone else: never send them our queries
            log.info("ignoring %s: it belongs to another user", path)
            return None
        info = ServeInfo.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.info("ignoring %s: unreadable (%s)", path, e)
        return None
    return info if info.protocol == PROTOCOL else None


def write_info(path: Path, info: ServeInfo) -> None:
    """Write serve.json atomically, readable by this user only (it holds the token)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(info), f)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def remove_info(path: Path, token: str) -> bool:
    """Remove serve.json if it still names `token` (not a newer server's file); True if removed."""
    info = read_info(path)
    if info is None or info.token != token:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def find_server(folder: Path | None = None) -> tuple[Path, ServeInfo] | None:
    """The live server for this index and these settings; a serve.json left by a dead one is removed."""
    folder = folder or index_dir()
    if folder is None:
        return None
    path = folder / SERVE_FILE
    info = read_info(path)
    if info is None:
        return None
    if not pid_alive(info.pid):
        if remove_info(path, info.token):
            log.info("removed %s: its server (pid %d) is gone", path, info.pid)
        return None
    if info.fingerprint != settings_fingerprint():
        log.info("not using rag serve (pid %d): it runs with other settings (RAG_* variables, %s or "
                 "working folder); restart it to use it", info.pid, config_file())
        return None
    return path, info


def post(info: ServeInfo, endpoint: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    """POST `payload` as JSON to the server; its JSON answer. Connection errors propagate;
    an error the server reports as the user's (a bad value, an empty index) is a ServerError."""
    body = json.dumps(payload).encode()
    # http.client, not urllib.request: the same request without urllib.request's ~30 ms of imports
    conn = http.client.HTTPConnection("127.0.0.1", info.port, timeout=timeout)
    try:
        conn.request("POST", f"/{endpoint}", body=body, headers={
            TOKEN_HEADER: info.token, "Content-Type": "application/json", "Content-Length": str(len(body))})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status == 200:
        answer: dict[str, Any] = json.loads(data)
        return answer
    detail = data.decode("utf-8", "replace")
    if resp.status == 422:
        raise ServerError(json.loads(detail).get("error", detail))
    raise ConnectionError(f"rag serve answered {resp.status}: {detail[:200]}")


def call(endpoint: str, payload: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """The server's answer to one request, or None: answer in process. A user's error the server
    reports (e.g. no index yet) is raised as the RagError it was, so it prints the same line."""
    found = find_server()
    if found is None:
        return None
    path, info = found
    try:
        answer = post(info, endpoint, payload, timeout)
    except ServerError as e:
        from core.errors import RagError

        raise RagError(str(e)) from None
    except ConnectionRefusedError:
        if remove_info(path, info.token):  # nothing listens on its port: the server is gone
            log.info("removed %s: nothing answers on port %d", path, info.port)
        return None
    except (OSError, http.client.HTTPException, ValueError) as e:  # timeouts are OSErrors
        log.info("rag serve (pid %d) did not answer (%s: %s); answering in this process",
                 info.pid, type(e).__name__, e)
        return None
    log.info("answered by rag serve (pid %d, port %d)", info.pid, info.port)
    return answer
