"""`rag bench llm`: time to first token and tokens/second of the embedded model
(llama.cpp, SmolLM2-135M GGUF) on a real answer prompt (numbered passages from the sample
corpus) and on a short prompt; on CPU, and with GPU offload when llama.cpp was built with
it; and of Ollama when it answers and has `llm.model`. Figures only, never assertions.

    rag bench llm
    python -m eval.bench.llm [--runs N] [--max-tokens N] [--json OUT]
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from core.llm import _LLAMA_CACHE, LLM, LlamaCppLLM, OllamaLLM, gguf_path, gpu_offload_supported, probe_ollama
from core.settings import Settings
from core.types import Hit, Record
from eval.bench import SAMPLE, Echo, main_for

QUESTION = "How fine should coffee be ground for espresso, and how long should it extract?"


def _passages(n: int = 5, chars: int = 600) -> list[Hit]:
    """Passages cut from the sample corpus, as retrieval would hand them to the prompt."""
    hits: list[Hit] = []
    for p in sorted(SAMPLE.glob("*")):
        text = p.read_text(encoding="utf-8", errors="replace")
        for i in range(0, len(text), chars):
            hits.append(Hit(Record(f"{p.name}:{i}", text[i:i + chars], str(p), start=i, end=i + chars), 1.0))
    return hits[:n]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def _fresh(messages: list[dict[str, str]], i: int) -> list[dict[str, str]]:
    """The messages with a run number in front, so no run reuses the previous one's
    evaluated prompt (llama.cpp and Ollama keep the KV cache of a shared prefix)."""
    first = {**messages[0], "content": f"(run {i}) {messages[0]['content']}"}
    return [first, *messages[1:]]


def _measure(llm: LLM, messages: list[dict[str, str]], runs: int, max_tokens: int) -> dict[str, Any]:
    """One warm-up, then `runs` streamed generations at temperature 0, each on a fresh prompt."""
    prompt_tokens = sum(llm.count_tokens(m["content"]) for m in _fresh(messages, 0))
    list(llm.stream(_fresh(messages, 0), max_tokens=max_tokens, temperature=0.0))  # warm-up (and load)
    ttft: list[float] = []
    decode: list[float] = []
    total: list[float] = []
    out_tokens: list[int] = []
    for i in range(1, runs + 1):
        t0 = time.perf_counter()
        first = None
        parts = []
        for tok in llm.stream(_fresh(messages, i), max_tokens=max_tokens, temperature=0.0):
            if first is None:
                first = time.perf_counter()
            parts.append(tok)
        end = time.perf_counter()
        n = llm.count_tokens("".join(parts)) if parts else 0
        first = first or end
        ttft.append((first - t0) * 1000)
        total.append((end - t0) * 1000)
        out_tokens.append(n)
        if n > 1 and end > first:
            decode.append((n - 1) / (end - first))
    return {
        "prompt_tokens": prompt_tokens, "runs": runs, "max_tokens": max_tokens,
        "output_tokens_mean": round(statistics.mean(out_tokens), 1),
        "ttft_ms_p50": round(_pct(ttft, 0.5), 1), "ttft_ms_p95": round(_pct(ttft, 0.95), 1),
        "prompt_tokens_per_s": round(prompt_tokens / (statistics.median(ttft) / 1000), 1),
        "decode_tokens_per_s_p50": round(statistics.median(decode), 1) if decode else None,
        "total_ms_p50": round(_pct(total, 0.5), 1),
    }


def _cases(llm: LLM, runs: int, max_tokens: int) -> dict[str, Any]:
    from retrieval.generate import fit_passages, messages_for

    passages, _ = fit_passages(QUESTION, _passages(), llm.context_window(), max_tokens, llm.count_tokens)
    return {
        "answer_prompt": _measure(llm, messages_for(QUESTION, passages), runs, max_tokens),
        "short_prompt": _measure(llm, [{"role": "user", "content": QUESTION}], runs, max_tokens),
    }


def _embedded(settings: Settings, gpu_layers: int, runs: int, max_tokens: int) -> dict[str, Any]:
    s = settings.model_copy(update={"llm": settings.llm.model_copy(update={"gpu_layers": gpu_layers})})
    llm = LlamaCppLLM(s)
    key = (str(llm.path), s.llm.n_ctx_llamacpp, gpu_layers)
    cold = key not in _LLAMA_CACHE
    t0 = time.perf_counter()
    llm.count_tokens("load")
    load_ms = (time.perf_counter() - t0) * 1000
    row: dict[str, Any] = {"model": llm.model, "gpu_layers": gpu_layers, "n_ctx": s.llm.n_ctx_llamacpp,
                           "threads": s.llm.threads or "llama.cpp default",
                           "load_ms": round(load_ms, 1) if cold else "already loaded"}
    row.update(_cases(llm, runs, max_tokens))
    return row


def run(
    settings: Settings, *, runs: int = 5, max_tokens: int = 64, echo: Echo | None = None
) -> dict[str, Any]:
    """Figures for the embedded model (CPU, and GPU when llama.cpp can offload) and Ollama;
    printed through `echo` as JSON."""
    out: dict[str, Any] = {"gguf": str(gguf_path(settings)), "gpu_offload_supported": gpu_offload_supported()}
    out["embedded_cpu"] = _embedded(settings, 0, runs, max_tokens)
    if out["gpu_offload_supported"]:
        out["embedded_gpu"] = _embedded(settings, settings.llm.gpu_layers, runs, max_tokens)
    else:
        out["embedded_gpu"] = "skipped: this llama.cpp build has no GPU offload (CPU only)"
    probe = probe_ollama(settings)
    if probe.reachable and probe.has(settings.llm.model):
        llm = OllamaLLM(settings)
        out["ollama"] = {"url": probe.url, "model": llm.model, **_cases(llm, runs, max_tokens)}
    else:
        out["ollama"] = f"skipped: {probe.error or f'no model {settings.llm.model!r} at {probe.url}'}"
    if echo:
        echo(json.dumps(out, indent=2, ensure_ascii=False, default=str))
    return out


def main(argv: list[str] | None = None) -> None:
    main_for(run, __doc__.splitlines()[0].strip('"'), argv, runs=5, max_tokens=64)


if __name__ == "__main__":
    main()
