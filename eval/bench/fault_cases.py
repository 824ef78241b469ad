"""The fault cases of `rag bench faults`, one small function each: `case(tmp) -> CaseResult`.

Each builds a few tiny files under `tmp`, runs whole `rag` processes on them as a user would
(RAG_INDEX_DIR in `tmp`, no other RAG_* variable), and compares the index left behind with a
clean in-process ingest of the good files. Setup that is not under test (an earlier version of
a corpus) is ingested in-process, which saves a process start-up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from core.errors import IndexBusyError
from core.lock import holder
from core.settings import load_settings
from eval.bench import REPO
from eval.bench.fault_kit import (
    CaseResult,
    Damage,
    Key,
    Proc,
    clean_exit,
    clean_records,
    count_damage,
    damage_vs_clean,
    finish,
    good_files,
    rag,
    rag_env,
    sources,
    start,
    texts,
    verdict,
)

Case = Callable[[Path], CaseResult]


def _ingest_args(*paths: Path) -> list[str]:
    return ["ingest", *map(str, paths), "--no-progress"]


def _reported(out: str, *names: str) -> list[str]:
    return [f"{n} not reported" for n in names if n not in out]


def bad_files(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good = good_files(d)
    (d / "binary.txt").write_bytes(bytes(range(256)) * 40 + b"\x00" * 2000)
    (d / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> \x00\xff garbage\n" * 20)
    (d / "empty.md").write_bytes(b"")
    p = rag(_ingest_args(d), rag_env(tmp / "index"), tmp)
    problems = clean_exit(p, 1) + _reported(p.stderr, "binary.txt", "corrupt.pdf", "empty.md")
    return verdict("bad-files", p, damage_vs_clean(good, tmp), problems, t0)


ENCODED = {  # file -> (codec, text, a word a search must find in it)
    "gbk.txt": ("gbk", "长城是中国古代的军事防御工程，绵延万里。人们常说不到长城非好汉。", "长城"),
    "big5.txt": ("big5", "玉山是臺灣最高的山峰，海拔將近四千公尺。登山客喜歡在清晨出發。", "玉山"),
    "utf16.txt": ("utf-16", "大熊猫主要以竹子为食，生活在四川的山林里。熊猫宝宝出生时很小。", "熊猫"),
}


def encodings(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    d.mkdir()
    for name, (codec, text, _) in ENCODED.items():
        (d / name).write_bytes(text.encode(codec))
    env = rag_env(tmp / "index")
    p = rag(_ingest_args(d), env, tmp)
    problems = clean_exit(p, 0)
    query = " ".join(w for _, _, w in ENCODED.values())
    s = rag(["search", "--json", "--mode", "bm25", "-k", "10", query], env, tmp)
    problems += clean_exit(s, 0)
    try:
        hits = json.loads(s.stdout)["hits"] if s.rc == 0 else []
    except (ValueError, KeyError):
        hits, problems = [], [*problems, f"search printed no JSON: {s.last_line()}"]
    for name, (codec, _, word) in ENCODED.items():
        if not any(h["source"].endswith(name) and word in h["text"] for h in hits):
            problems.append(f"{codec}: '{word}' not found in {name}")
    dmg = damage_vs_clean(sorted(d.iterdir()), tmp)
    return verdict("encodings", p, dmg, problems, t0)


def _folder_case(name: str, tmp: Path, good: list[Path], t0: float, check: Callable[[Proc], str | None]
                 ) -> CaseResult:
    """`rag ingest` of tmp/docs into tmp/index as a process, judged: its exit (0 or 1: files it
    could not read are reported, not fatal), `check`'s complaint if any, and the damage against
    a clean ingest of the `good` files."""
    p = rag(_ingest_args(tmp / "docs"), rag_env(tmp / "index"), tmp)
    problems = clean_exit(p, (0, 1))
    if (why := check(p)) is not None:
        problems.append(why)
    return verdict(name, p, damage_vs_clean(good, tmp), problems, t0)


def symlink_loop(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good = good_files(d)
    (d / "sub").mkdir()
    (d / "sub" / "back").symlink_to(d, target_is_directory=True)  # a folder loop
    (d / "x.md").symlink_to(d / "y.md")  # a file loop
    (d / "y.md").symlink_to(d / "x.md")
    return _folder_case("symlink-loop", tmp, good, t0,
                        lambda p: None if "loop" in p.output.lower() else "the loop was not reported")


def symlink_outside(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good = good_files(d)
    outside = tmp / "outside"
    outside.mkdir()
    secret = outside / "secret.md"
    secret.write_text("Secret: the vault code is kumquat seven three one nine.\n")
    (d / "linked.md").symlink_to(secret)
    (d / "outdir").symlink_to(outside, target_is_directory=True)
    def indexed_outside(p: Proc) -> str | None:
        if str(secret.resolve()) in sources(tmp / "index") or "kumquat" in texts(tmp / "index"):
            return "the file outside the folder was indexed through a symlink"
        return None

    return _folder_case("symlink-outside", tmp, good, t0, indexed_outside)


def non_utf8_name(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good = good_files(d)
    fd = os.open(os.fsencode(d) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"A file whose name is Latin-1, about harbours.\n")
    os.close(fd)
    expected = clean_records(good, tmp / "clean")
    problems: list[str] = []
    dmg = Damage()
    p = None
    for run in ("first", "second"):
        p = rag(_ingest_args(d), rag_env(tmp / "index"), tmp)
        problems += [f"{run} run: {x}" for x in clean_exit(p, 1) + _reported(p.stderr, "bad\\xff.txt")]
        dmg += count_damage(expected, tmp / "index")
    return verdict("non-utf8-name", p, dmg, problems, t0)


def _changed(d: Path) -> None:
    """A new version of `good_files`: one file changed, one added, so a commit adds and deletes."""
    (d / "alpha.md").write_text("# Alpha\n\nDeserts hold dunes that move with the wind.\n\n"
                                "## More\n\nIce sheets hold most of the fresh water on Earth.\n")
    (d / "charlie.md").write_text("Charlie: volcanoes erupt molten rock near the coast.\n")


def _kill_at(step: str) -> Case:
    def case(tmp: Path) -> CaseResult:
        from ingest.pipeline import ingest

        t0 = time.perf_counter()
        d = tmp / "docs"
        good_files(d)
        ingest([d], load_settings(index_dir=tmp / "index"))  # the version indexed before the fault
        _changed(d)
        crashed = rag(_ingest_args(d), rag_env(tmp / "index", RAG_FAULT_AT=step), tmp)
        problems = [f"killed run: {x}" for x in clean_exit(crashed, 137)]
        p = rag(_ingest_args(d), rag_env(tmp / "index"), tmp)
        problems += clean_exit(p, 0)
        dmg = damage_vs_clean(sorted(d.iterdir()), tmp)
        return verdict(f"kill-{step}", p, dmg, problems, t0)

    case.__name__ = case.__qualname__ = f"kill_{step}"
    return case


WORDS = ("river mountain budget sheep glacier valley ocean harbour lighthouse keeper ledger "
         "copper orchard lantern meadow quarry").split()


def _corpus(d: Path, n: int) -> list[Path]:
    d.mkdir(parents=True)
    files = []
    for i in range(n):
        paras = [" ".join(WORDS[(i * 7 + j * 3 + k) % len(WORDS)] for k in range(90)) + f". Note {i}-{j}."
                 for j in range(5)]
        f = d / f"note{i:02d}.md"
        f.write_text(f"# Note {i}\n\n" + "\n\n".join(paras) + "\n")
        files.append(f)
    return files


def kill_9(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    files = _corpus(tmp / "docs", 40)
    idx = tmp / "index"
    proc = start(_ingest_args(tmp / "docs"), rag_env(idx), tmp)
    deadline = time.monotonic() + 120
    while holder(idx) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    problems: list[str] = []
    if proc.poll() is None and holder(idx) is not None:
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
    else:
        problems.append("the ingest never held the lock before it ended")
    killed = finish(proc, 30)
    if killed.rc != -signal.SIGKILL:
        problems.append(f"the ingest was not killed (exit {killed.rc})")
    p = rag(_ingest_args(tmp / "docs"), rag_env(idx), tmp)
    problems += clean_exit(p, 0)
    dmg = count_damage(clean_records(files, tmp / "clean"), idx)
    return verdict("kill-9", p, dmg, problems, t0)


def _refused_or_ok(tag: str, p: Proc) -> list[str]:
    """A second writer either runs (after the first) or is refused in one line."""
    if p.rc == 0:
        return []
    if p.rc == 1 and "is being written" in p.stderr and not p.traceback():
        return []
    wrong = [f"{tag}: {x}" for x in clean_exit(p, (0, 1))]
    return wrong or [f"{tag}: exit 1 but not refused: {p.last_line()}"]


def concurrent_ingest(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good_files(d)
    _changed(d)
    env = rag_env(tmp / "index")
    a, b = start(_ingest_args(d), env, tmp), start(_ingest_args(d), env, tmp)
    ra, rb = finish(a, 300), finish(b, 300)
    problems = _refused_or_ok("first", ra) + _refused_or_ok("second", rb)
    expected = clean_records(sorted(d.iterdir()), tmp / "clean")
    dmg = count_damage(expected, tmp / "index")
    p = rag(_ingest_args(d), env, tmp)
    problems += clean_exit(p, 0)
    dmg += count_damage(expected, tmp / "index")
    refused = sum(1 for r in (ra, rb) if r.rc == 1)
    return verdict("concurrent-ingest", p, dmg, problems, t0, f"{refused} of 2 refused as busy")


HOLD = ("import sys, time\nfrom pathlib import Path\nfrom core.lock import write_lock\n"
        "with write_lock(Path(sys.argv[1]), 'an ingest'):\n"
        "    print('held', flush=True)\n    time.sleep(120)\n")


# The chat UI's upload path (app/uploads.py), run in a child process as the UI runs it: eval
# sits below app and does not import it. Prints the saved paths and the refusals as JSON.
UPLOAD = ("import json\nfrom app.uploads import Upload, save_uploads\n"
          "from core.settings import load_settings\n"
          "saved = save_uploads([Upload('field notes.md', b'Field notes: the heron nests by the weir.\\n')],"
          " load_settings())\n"
          "print(json.dumps({'paths': [str(p) for p in saved.paths], 'errors': saved.errors}))\n")


def upload_during_ingest(tmp: Path) -> CaseResult:
    from ingest.pipeline import ingest

    t0 = time.perf_counter()
    s = load_settings(index_dir=tmp / "index")
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(s.index_path)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, env=rag_env(s.index_path))
    problems: list[str] = []
    try:
        if writer.stdout is None or writer.stdout.readline().strip() != "held":
            problems.append("the helper never held the lock")
        up = subprocess.run([sys.executable, "-c", UPLOAD], cwd=REPO, text=True, capture_output=True,
                            env=rag_env(s.index_path), timeout=300)
        saved = json.loads(up.stdout.strip().splitlines()[-1]) if up.returncode == 0 else {}
        paths = [Path(p) for p in saved.get("paths", [])]
        problems += saved.get("errors", []) if up.returncode == 0 else [f"upload failed: {up.stderr[-300:]}"]
        try:
            ingest(paths, s)
            problems.append("the upload was ingested while another writer held the index")
        except IndexBusyError as e:
            if f"pid {writer.pid}" not in str(e):
                problems.append(f"the busy error does not name the holder: {e}")
    finally:
        writer.terminate()
        writer.wait(30)
    report = ingest(paths, s)
    if report.count("added") != 1:
        problems.append(f"after the holder exited: {report.summary()}")
    dmg = damage_vs_clean(paths, tmp)
    return verdict("upload-during-ingest", None, dmg, problems, t0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_chroma(url: str, server: subprocess.Popen[bytes], seconds: float = 90) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def chroma_down(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good = good_files(d)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = rag_env(tmp / "index", RAG_CHROMA_URL=url)
    down = rag(_ingest_args(d), env, tmp)
    problems = [f"server down: {x}" for x in clean_exit(down, 1)]
    if len(down.error_lines()) != 1:
        problems.append(f"server down: {len(down.error_lines())} 'Error:' lines, expected 1")
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    server = subprocess.Popen([exe, "run", "--path", str(tmp / "chroma-data"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not _wait_chroma(url, server):
            return verdict("chroma-down", down, Damage(), [*problems, "chroma run did not start"], t0)
        p = rag(_ingest_args(d), env, tmp)
        problems += clean_exit(p, 0)
        dmg = count_damage(clean_records(good, tmp / "clean"), tmp / "index", chroma_url=url)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return verdict("chroma-down", p, dmg, problems, t0)


def _silent_server() -> tuple[socket.socket, list[socket.socket]]:
    """A TCP server on loopback that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return srv, conns


OLLAMA_TIMEOUT_S = 5


def ollama_hanging(tmp: Path) -> CaseResult:
    from ingest.pipeline import ingest

    t0 = time.perf_counter()
    good = good_files(tmp / "docs")
    ingest(good, load_settings(index_dir=tmp / "index"))
    srv, conns = _silent_server()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    env = rag_env(tmp / "index", RAG_LLM__PROVIDER="ollama", RAG_OLLAMA_URL=url,
                  RAG_LLM__TIMEOUT_S=str(OLLAMA_TIMEOUT_S))
    try:
        p = rag(["ask", "When was the quarterly budget for the harbour approved?"], env, tmp,
                timeout=OLLAMA_TIMEOUT_S + 90)
    finally:
        srv.close()
        for c in conns:
            c.close()
    problems = clean_exit(p, nonzero=True)
    if p.rc is not None and p.seconds > OLLAMA_TIMEOUT_S + 30:
        problems.append(f"took {p.seconds:.0f}s with llm.timeout_s = {OLLAMA_TIMEOUT_S}")
    if p.rc and not p.error_lines():
        problems.append(f"no 'Error:' line: {p.last_line()}")
    dmg = damage_vs_clean(good, tmp)
    return verdict("ollama-hanging", p, dmg, problems, t0, f"{len(conns)} connections left unanswered")


def malformed_toml(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good_files(d)
    work = tmp / "work"
    work.mkdir()
    (work / "rag.toml").write_text('[llm\nprovider = "ollama"\n')
    p = rag(_ingest_args(d), rag_env(tmp / "index"), work)
    problems = clean_exit(p, 1)
    if not p.error_lines():
        problems.append("no 'Error:' line")
    return verdict("malformed-rag.toml", p, Damage(), problems, t0)


def index_dir_is_a_file(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good_files(d)
    f = tmp / "not-a-folder"
    f.write_text("keep me\n")
    p = rag(_ingest_args(d), rag_env(f), tmp)
    problems = clean_exit(p, nonzero=True)
    if not p.error_lines():
        problems.append(f"no 'Error:' line: {p.last_line()}")
    dmg = Damage()
    if not f.is_file() or f.read_text() != "keep me\n":
        dmg.add(1, "file at RAG_INDEX_DIR overwritten", lost=True)
    return verdict("index-dir-is-a-file", p, dmg, problems, t0)


def markup_name(tmp: Path) -> CaseResult:
    """`[/x]` in a path is a closing tag to rich: printing it as markup raises MarkupError. The
    folder `[` holds `x]note.md`, so the path reads `.../[/x]note.md`; an empty file beside it
    fails, so its name must be printed."""
    t0 = time.perf_counter()
    d = tmp / "docs"
    (d / "[").mkdir(parents=True)
    good = [d / "[" / "x]note.md", d / "[b]plain.md"]
    good[0].write_text("A note whose path reads like rich markup, about herons.\n")
    good[1].write_text("Another note, about otters by the weir.\n")
    (d / "[" / "x]empty.md").write_bytes(b"")
    p = rag(_ingest_args(d), rag_env(tmp / "index"), tmp)
    problems = clean_exit(p, 1) + _reported(p.stderr, "[/x]empty.md")
    return verdict("markup-file-name", p, damage_vs_clean(good, tmp),
                   problems, t0)


DOCX_TYPES = (b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
              b'package/2006/content-types"><Default Extension="rels" ContentType="application/'
              b'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
              b'"application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
              b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
DOCX_RELS = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.'
             b'org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
             b'openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
             b'Target="word/document.xml"/></Relationships>')


def zip_bomb(path: Path, inflated_mb: int = 500) -> None:
    """A DOCX whose document.xml inflates to `inflated_mb` MB of spaces (the file is ~0.5 MB)."""
    ns = b"http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", DOCX_TYPES)
        z.writestr("_rels/.rels", DOCX_RELS)
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="' + ns
                    + b'"><w:body><w:p><w:r><w:t xml:space="preserve">')
            block = b" " * (1 << 20)
            for _ in range(inflated_mb):
                f.write(block)
            f.write(b"bomb</w:t></w:r></w:p></w:body></w:document>")


BOMB_PEAK_MB = 2000  # a normal `rag ingest` of a few small files peaks well under this


def docx_zip_bomb(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    good = good_files(d)
    zip_bomb(d / "bomb.docx")
    p = rag(_ingest_args(d), rag_env(tmp / "index"), tmp, timeout=240)
    problems = clean_exit(p, 1) + _reported(p.stderr, "bomb.docx")
    peak = p.peak_mb or 0
    if peak > BOMB_PEAK_MB:
        problems.append(f"peak memory {peak:.0f} MB")
    dmg = damage_vs_clean(good, tmp)
    return verdict("docx-zip-bomb", p, dmg, problems, t0, f"peak {peak:.0f} MB")


# A 3 MB file of short lines once took quadratic time to chunk. The case fails when the whole
# ingest takes more than BIG_SLACK times what the encoder alone needs for the same chunks
# (measured on a sample in this run, so a slow machine is not a failure) plus BIG_FIXED_S
# for the process start and the model load.
BIG_SLACK = 2.0
BIG_FIXED_S = 30.0
BIG_SAMPLE = 256


def _encoder_seconds(texts: list[str]) -> float:
    """The seconds the torch encoder needs for `texts`, extrapolated from a sample of them."""
    from core.models import get_embedder
    from core.settings import EmbeddingSettings

    emb = get_embedder(EmbeddingSettings(numpy_queries=False))
    step = max(1, len(texts) // BIG_SAMPLE)
    sample = texts[::step][:BIG_SAMPLE]
    emb.embed(sample[:8])  # model loaded before the clock starts
    t0 = time.perf_counter()
    emb.embed(sample)
    return (time.perf_counter() - t0) * len(texts) / max(1, len(sample))


def _chunked(path: Path) -> list[Key]:
    """The records an ingest stores for `path` (load + chunk, as the pipeline does), without
    embedding them again: a clean ingest of 3 MB would double the case's cost."""
    from ingest.chunking import chunk_document
    from ingest.loaders import load

    s = load_settings()
    records = chunk_document(load(path, s.ingest), str(path), s.chunk)
    return [(r.source, r.start, r.end, r.text) for r in records]


def big_plain_text(tmp: Path) -> CaseResult:
    t0 = time.perf_counter()
    d = tmp / "docs"
    d.mkdir()
    big = (d / "log.txt").resolve()
    lines, n, i = [], 0, 0
    while n < 3_000_000:
        line = f"entry {i}: sheep {i % 97} crossed bridge {i % 13} at dawn\n"
        lines.append(line)
        n, i = n + len(line), i + 1
    big.write_text("".join(lines))
    p = rag(_ingest_args(d), rag_env(tmp / "index"), tmp, timeout=900)
    problems = clean_exit(p, 0)
    chunks = _chunked(big)
    enc_s = _encoder_seconds([c[3] for c in chunks])
    limit = BIG_SLACK * enc_s + BIG_FIXED_S
    if p.rc is not None and p.seconds > limit:
        problems.append(f"took {p.seconds:.0f}s, over {limit:.0f}s ({BIG_SLACK:g} x the encoder's "
                        f"{enc_s:.0f}s + {BIG_FIXED_S:.0f}s)")
    rate = (f"{n / p.seconds:,.0f} chars/s ({n:,} chars, {i:,} lines, {len(chunks):,} chunks in "
            f"{p.seconds:.0f}s; encoder alone ~{enc_s:.0f}s; peak {p.peak_mb or 0:.0f} MB)")
    dmg = count_damage(chunks, tmp / "index") if p.rc == 0 else Damage()
    return verdict("3mb-short-lines", p, dmg, [*problems, *([rate] if problems else [])], t0, rate)
