"""A small real HTTP server on 127.0.0.1 that speaks Ollama's API and answers with the real
embedded SmolLM2 through llama.cpp. No Ollama can be installed where this project is built,
so the product's Ollama path is tested against this server through the real `ollama` client.

Endpoints (shapes as Ollama documents them): `GET /` ("Ollama is running"), `GET /api/version`,
`GET /api/tags`, `POST /api/show`, `POST /api/chat` (streaming NDJSON by default, or one JSON
object with `"stream": false`; `options.num_ctx`, `num_predict`, `temperature` and `format`
honoured). Unknown models get 404 with `{"error": "model \\"x\\" not found, try pulling it first"}`.
Every request is recorded in `server.requests`. `hang` names paths that never answer (until
the server stops), for timeout tests. `reply` (a string, or a function of the chat messages
returning one; or the environment variable `OLLAMA_TEST_REPLY`) scripts `/api/chat`: the model
is not run and the reply is sent as it is (streamed word by word), to stand in for a capable
model whose exact output a test needs to know; `token_delay_s` paces its streamed words.

    with OllamaTestServer(models=["smollm2:135m"]) as srv:
        settings.ollama_url = srv.url
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.llm import default_gguf

MAX_CTX = 8192  # SmolLM2's trained context


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _norm(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class _Model:
    """One GGUF behind a lock, one llama.cpp context per requested num_ctx (as Ollama reloads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.by_ctx: dict[int, Any] = {}
        self.digest = hashlib.sha256(str(path).encode()).hexdigest()

    def llama(self, num_ctx: int) -> Any:
        from core.llm import open_llama

        n = max(256, min(int(num_ctx), MAX_CTX))
        if n not in self.by_ctx:
            self.by_ctx[n] = open_llama(self.path, n)
        return self.by_ctx[n]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # --- plumbing
    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b"{}"
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            data = None
        return data if isinstance(data, dict) else {}

    def _hang_if_asked(self, path: str) -> bool:
        if path in self.server.hang:
            self.server.stopping.wait(self.server.hang_s)
            self.close_connection = True
            return True
        return False

    def _record(self, method: str, body: dict[str, Any] | None = None) -> None:
        with self.server.rec_lock:
            self.server.requests.append({"method": method, "path": self.path, "body": body or {}})

    def _not_found(self, model: str) -> None:
        self._json(404, {"error": f'model "{model}" not found, try pulling it first'})

    # --- routes
    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self._record("GET")
        if self._hang_if_asked(self.path):
            return
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/version":
            self._json(200, {"version": "0.0.0-localrag-test"})
        elif self.path == "/api/tags":
            self._json(200, {"models": [self.server.describe(m) for m in self.server.models]})
        else:
            self._json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        self._record("POST", body)
        if self._hang_if_asked(self.path):
            return
        if self.path == "/api/show":
            name = str(body.get("model") or body.get("name") or "")
            if not self.server.known(name):
                self._not_found(name)
                return
            self._json(
                200,
                {
                    "modelfile": f"FROM {self.server.model.path}",
                    "parameters": "",
                    "template": "{{ .Prompt }}",
                    "details": self.server.describe(name)["details"],
                    "model_info": {"general.architecture": "llama", "llama.context_length": MAX_CTX},
                    "capabilities": ["completion"],
                    "modified_at": _now(),
                },
            )
        elif self.path == "/api/chat":
            self._chat(body)
        else:
            self._json(404, {"error": "404 page not found"})

    def _chat(self, body: dict[str, Any]) -> None:
        name = str(body.get("model") or "")
        if not self.server.known(name):
            self._not_found(name)
            return
        msgs = body.get("messages")
        if not isinstance(msgs, list):
            self._json(400, {"error": "messages must be a list"})
            return
        opts = body.get("options") or {}
        kw: dict[str, Any] = {
            "messages": [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in msgs],
            "max_tokens": int(opts.get("num_predict", 128)),
            "temperature": float(opts.get("temperature", 0.8)),
        }
        fmt = body.get("format")
        if isinstance(fmt, dict):
            kw["response_format"] = {"type": "json_object", "schema": fmt}
        elif fmt == "json":
            kw["response_format"] = {"type": "json_object"}
        stream = body.get("stream", True) is not False
        t0 = time.perf_counter_ns()
        scripted = self.server.scripted(kw["messages"])
        if scripted is not None:
            self._send_scripted(name, scripted, stream, t0)
            return
        with self.server.model.lock:
            llama = self.server.model.llama(int(opts.get("num_ctx", 2048)))
            if stream:
                self._stream(name, llama, kw, t0)
            else:
                out = llama.create_chat_completion(**kw)
                text = out["choices"][0]["message"]["content"] or ""
                usage = out.get("usage", {})
                msg = {"role": "assistant", "content": text}
                self._json(
                    200,
                    self._final(
                        name, t0, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), msg
                    ),
                )

    def _send_scripted(self, name: str, text: str, stream: bool, t0: int) -> None:
        msg = {"role": "assistant", "content": text}
        if not stream:
            self._json(200, self._final(name, t0, 0, len(text.split()), msg))
            return
        self._start_stream()
        parts = re.findall(r"\S+\s*|\s+", text)
        for part in parts:
            time.sleep(self.server.token_delay_s)  # as a model on a slow machine: visible streaming
            self._send_line(
                {
                    "model": name,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": part},
                    "done": False,
                }
            )
        self._send_line(self._final(name, t0, 0, len(parts), {"role": "assistant", "content": ""}))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_line(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj).encode() + b"\n"
        self.wfile.write(f"{len(line):X}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def _final(
        self, name: str, t0: int, n_prompt: int, n_out: int, message: dict[str, str]
    ) -> dict[str, Any]:
        dur = time.perf_counter_ns() - t0
        return {
            "model": name,
            "created_at": _now(),
            "message": message,
            "done": True,
            "done_reason": "stop",
            "total_duration": dur,
            "load_duration": 0,
            "prompt_eval_count": n_prompt,
            "prompt_eval_duration": 0,
            "eval_count": n_out,
            "eval_duration": dur,
        }

    def _stream(self, name: str, llama: Any, kw: dict[str, Any], t0: int) -> None:
        self._start_stream()
        send = self._send_line

        n = 0
        for part in llama.create_chat_completion(stream=True, **kw):
            delta = part["choices"][0].get("delta", {}).get("content")
            if delta:
                n += 1
                send(
                    {
                        "model": name,
                        "created_at": _now(),
                        "message": {"role": "assistant", "content": delta},
                        "done": False,
                    }
                )
        send(self._final(name, t0, 0, n, {"role": "assistant", "content": ""}))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        addr: tuple[str, int],
        models: list[str],
        hang: set[str],
        hang_s: float,
        model: _Model,
        reply: Reply | None = None,
        token_delay_s: float = 0.0,
    ) -> None:
        super().__init__(addr, _Handler)
        self.reply = reply
        self.token_delay_s = token_delay_s
        self.models = models
        self.hang = hang
        self.hang_s = hang_s
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.rec_lock = threading.Lock()
        self.stopping = threading.Event()

    def scripted(self, messages: list[dict[str, Any]]) -> str | None:
        reply = self.reply if self.reply is not None else os.environ.get("OLLAMA_TEST_REPLY")
        if reply is None:
            return None
        return reply(messages) if callable(reply) else str(reply)

    def known(self, name: str) -> bool:
        return bool(name) and any(_norm(name) == _norm(m) for m in self.models)

    def describe(self, name: str) -> dict[str, Any]:
        size = self.model.path.stat().st_size
        return {
            "name": _norm(name),
            "model": _norm(name),
            "modified_at": _now(),
            "size": size,
            "digest": self.model.digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "135M",
                "quantization_level": "Q4_1",
            },
        }


_MODELS: dict[str, _Model] = {}
Reply = str | Callable[[list[dict[str, Any]]], str]


class OllamaTestServer:
    """Start with `with OllamaTestServer(...) as srv:` (or `.start()` / `.stop()`)."""

    def __init__(
        self,
        models: list[str] | None = None,
        hang: set[str] | None = None,
        hang_s: float = 30.0,
        gguf: Path | None = None,
        reply: Reply | None = None,
        token_delay_s: float = 0.0,
    ) -> None:
        path = gguf or default_gguf()
        model = _MODELS.setdefault(str(path), _Model(path))
        names = list(models or ["smollm2:135m"])
        self._srv = _Server(("127.0.0.1", 0), names, set(hang or ()), hang_s, model, reply, token_delay_s)
        self._thread = threading.Thread(target=self._srv.serve_forever, name="ollama-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._srv.server_address[1]}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._srv.rec_lock:
            return list(self._srv.requests)

    @property
    def reply(self) -> Reply | None:
        return self._srv.reply

    @reply.setter
    def reply(self, value: Reply | None) -> None:
        self._srv.reply = value

    @property
    def hang(self) -> set[str]:
        return self._srv.hang

    def start(self) -> OllamaTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._srv.stopping.set()
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OllamaTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A port nothing listens on (for the "server down" case)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":  # run standalone: python tests/ollama_server.py
    import sys

    srv = OllamaTestServer(models=sys.argv[1:] or None).start()
    print(f"serving Ollama's API at {srv.url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()
