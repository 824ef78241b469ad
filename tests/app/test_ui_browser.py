"""End to end in a real headless browser: `rag ui` serves the chat on a free loopback port
over a small ingested corpus; Chromium (Debian's, driven by Playwright) asks a question,
watches the answer stream in, waits for its citations, opens one and saves a screenshot
under the test's temporary folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import load_settings
from ingest.pipeline import ingest
from tests.conftest import needs_system_dep
from tests.files import write_docs
from tests.ollama_server import OllamaTestServer, free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = {
    "kettles.md": (
        "# Kettles\n\nA gooseneck kettle has a long, thin spout. It pours a slow, steady stream of water, "
        "which makes pour-over coffee easier to control.\n\n## Temperature\n\n"
        "For green tea, heat the water to about 80 degrees Celsius; boiling water makes it bitter.\n"
    ),
    "bicycles.md": (
        "# Bicycle maintenance\n\nLubricate the chain every 300 kilometres and wipe off the excess oil. "
        "Check the tyre pressure weekly; road tyres need about 6 bar.\n"
    ),
}
QUESTION = "What does a gooseneck kettle do?"
# A capable model stands in (scripted through the Ollama test server, paced): the embedded 135M
# model answers extractively, in one piece, and a generative answer streams checked sentence by
# checked sentence, so the reply has two.
REPLY = ("A gooseneck kettle has a long, thin spout [1]. It pours a slow, steady stream of water, "
         "which makes pour-over coffee easier to control [1].")
# Records every distinct text the first answer shows while it streams (a DOM observer, so no
# update is missed however fast the tokens come).
OBSERVE = """() => {
  window.__answerStates = [];
  const seen = new Set();
  const look = () => {
    const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
    if (msgs.length < 2) return;
    const md = msgs[1].querySelector('[data-testid="stMarkdownContainer"]');
    const t = md ? md.innerText.trim() : "";
    if (t && !seen.has(t)) { seen.add(t); window.__answerStates.push(t); }
  };
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

pytestmark = needs_system_dep(
    Path(CHROMIUM).exists(),
    f"no chromium binary at {CHROMIUM} (apt-get install chromium; .ci/run installs it)",
)


def _rag_command() -> list[str]:
    script = Path(sys.executable).parent / "rag"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"`rag ui` exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    docs = write_docs(tmp_path / "docs", DOCS)
    assert not ingest([docs], load_settings()).failed  # RAG_INDEX_DIR is this test's own
    port = free_port()
    ollama = OllamaTestServer(models=["llama3.2:latest"], reply=REPLY, token_delay_s=0.08).start()
    env = {**os.environ, "RAG_UI__PORT": str(port), "RAG_LLM__MAX_TOKENS": "48", "RAG_LLM__TEMPERATURE": "0",
           "RAG_LLM__MODEL": "llama3.2", "RAG_OLLAMA_URL": ollama.url}  # auto: Ollama, generative
    proc = subprocess.Popen([*_rag_command(), "ui"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True).start()
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", proc, 180)
        assert any(f"Chat UI at http://127.0.0.1:{port}" in x for x in lines), lines
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGTERM)  # `rag ui` stops its streamlit server
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started
            proc.wait()
        ollama.stop()
        print("".join(lines[-20:]))


@pytest.mark.slow
def test_chat_in_a_real_browser(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shot = tmp_path / "chat.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(served, wait_until="domcontentloaded")
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=180_000)
            expect(page.get_by_text("llama3.2").first).to_be_visible(timeout=60_000)  # the Ollama backend
            page.evaluate(OBSERVE)
            box.fill(QUESTION)
            box.press("Enter")
            first_citation = page.locator('[data-testid="stExpander"] summary', has_text="[1] kettles.md")
            first_citation.wait_for(timeout=900_000)
            states: list[str] = page.evaluate("window.__answerStates")
            answer = page.get_by_test_id("stChatMessage").nth(1)
            expect(answer).to_contain_text("Sources")
            first_citation.click()
            mark = answer.locator("mark").first
            expect(mark).to_be_visible(timeout=30_000)
            assert "gooseneck" in mark.inner_text().lower()
            expect(answer.get_by_text("Open the whole document in a new tab")).to_be_visible()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    final = states[-1] if states else ""
    assert final, "no answer text appeared"
    # streamed: the answer grew in several steps, shorter first
    assert len(states) >= 2, f"the answer appeared in one piece: {states}"
    assert len(states[0]) < len(final), states
