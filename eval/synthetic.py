"""Labelled sets we make ourselves, saved in BEIR format so later runs are comparable.

- `build_synthetic`: from the current index, the LLM writes one question per sampled
  chunk (that chunk is the relevant one). Generations are cleaned and filtered (empty,
  chatter, not a question, too short/long, a copy of the passage, duplicates) and every
  rejection is counted. The set is saved under `reports/synthetic/` keyed by the index
  state, model and sample, and reused when asked again.
- `general_set`: deterministic sets from text already on this machine (Python docstrings,
  package READMEs), built by `eval.labelled`, to judge quality without tuning to one set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import sys
import sysconfig
from collections import Counter
from collections.abc import Callable
from difflib import SequenceMatcher
from pathlib import Path

from core.errors import IndexError_
from core.index import Index
from core.llm import get_llm
from core.settings import Settings
from eval.datasets import Corpus, Dataset, Issues, check_path, save_beir

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_PREFIX = re.compile(r"^\s*(?:\*\*|#+|[-*]|\d+[.)]|q(?:uestion)?\s*\d*\s*[:.]|问题\s*[:：])\s*", re.I)
_CHATTER = re.compile(r"^(sure|here('s| is| are)|certainly|of course|i('m| am) sorry|as an ai|okay)\b", re.I)
_QWORDS = re.compile(r"^(what|why|how|when|where|which|who|whom|whose|is|are|do|does|did|can|could|should|"
                     r"would|will|was|were|has|have|in what|according)\b", re.I)
_ZH_Q = re.compile(r"(什么|为什么|怎么|怎样|如何|哪|多少|几|吗|呢|是否)")

PROMPT_EN = ("Passage:\n{passage}\n\nWrite one question that a reader could answer from this passage alone. "
             "Reply with the question only.")
PROMPT_ZH = "段落：\n{passage}\n\n请写一个可以用这个段落回答的问题。只回复问题本身。"


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\u3400-\u9fff]+", " ", s.lower()).split())


def clean_question(raw: str, passage: str) -> tuple[str | None, str]:
    """The question in an LLM reply, or None and why it was rejected."""
    lines = [ln.strip() for ln in (raw or "").strip().splitlines() if ln.strip()]
    while lines and _CHATTER.match(lines[0]) and not lines[0].rstrip().endswith(("?", "？")):
        lines.pop(0)  # "Sure! Here is a question:" then the question
    if not lines:
        return None, "empty"
    q = _PREFIX.sub("", lines[0]).strip().strip("\"'“”*`").strip()
    if _CHATTER.match(q):
        return None, "chatter"
    cjk = len(_CJK.findall(q))
    n_words = len(q.split()) if cjk < 3 else cjk // 2
    if n_words < 3 or len(q) < 8:
        return None, "too_short"
    if n_words > 40 or len(q) > 300:
        return None, "too_long"
    asks = q.endswith(("?", "？")) or _QWORDS.match(q) or (cjk >= 3 and _ZH_Q.search(q))
    if not asks:
        return None, "not_a_question"
    if not q.endswith(("?", "？")):
        q += "？" if cjk >= 3 else "?"
    nq, np_ = _norm(q), _norm(passage)
    if len(nq) > 20 and nq in np_:
        return None, "copy_of_passage"
    for sent in re.split(r"(?<=[.!?。！？])\s*", passage):
        if sent.strip() and SequenceMatcher(None, nq, _norm(sent)).ratio() > 0.85:
            return None, "copy_of_passage"
    return q, "ok"


def _key(index: Index, settings: Settings, n: int, seed: int) -> str:
    man = index.manifest()
    blob = json.dumps({"index": str(index.path), "updated": man.get("updated_at"), "n": n, "seed": seed,
                       "llm": [settings.llm.provider, settings.llm.model, str(settings.llm.gguf_path)],
                       "prompt": PROMPT_EN + PROMPT_ZH}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_synthetic(settings: Settings, n: int, out_root: Path = Path("reports/synthetic"), seed: int = 0,
                    max_tokens: int = 48, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write (or reuse) a BEIR folder of LLM-written questions over the current index."""
    index = Index(settings)
    if not index.exists():
        raise IndexError_(f"No index at {index.path} to write questions about; run `rag ingest PATH` first.")
    out = out_root / f"{index.path.name}-{_key(index, settings, n, seed)}"
    if (out / "meta.json").exists():
        log.info("reusing the synthetic set at %s", out)
        return out
    chunks = list(index.docs.iter_records(kinds=("chunk",)))
    rng = random.Random(seed)
    rng.shuffle(chunks)
    llm = get_llm(settings)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    docs: dict[str, tuple[str, str]] = {}
    reasons: Counter[str] = Counter()
    seen: set[str] = set()
    tried = 0
    for rec in chunks[: 2 * n]:  # over-sample: some generations are rejected
        if len(queries) >= n:
            break
        tried += 1
        passage = rec.text[:1500]
        prompt = PROMPT_ZH if len(_CJK.findall(passage)) > len(passage) / 4 else PROMPT_EN
        try:
            raw = llm.complete([{"role": "user", "content": prompt.format(passage=passage)}], max_tokens=max_tokens,
                               temperature=0.0)
        except Exception as e:  # a failed generation is one rejected sample, never the end of the run
            log.warning("question generation failed: %s", e)
            raw = ""
        q, why = clean_question(raw, rec.text)
        if q is not None and _norm(q) in seen:
            q, why = None, "duplicate"
        reasons[why] += 1
        if progress:
            progress(min(len(queries) + (q is not None), n), n)
        if q is None:
            continue
        seen.add(_norm(q))
        qid = f"s{len(queries):04d}"
        queries[qid], qrels[qid] = q, {rec.id: 1}
        docs[rec.id] = (rec.title, rec.text)
    meta = {"index": str(index.path), "index_updated_at": index.manifest().get("updated_at"), "seed": seed,
            "asked": n, "tried": tried, "kept": len(queries), "filter": dict(reasons),
            "llm": {"backend": llm.backend, "model": llm.model}, "level": "chunk"}
    save_beir(out, docs, queries, qrels, meta)
    return out


def synthetic_dataset(folder: Path) -> Dataset:
    """A saved synthetic set, evaluated against the current index (qrels name chunk ids)."""
    from eval.datasets import load_qrels, load_queries

    check_path(folder, "synthetic set", "Build one with `rag eval --synthetic N`.")
    issues = Issues()
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else {}
    for why, count in meta.get("filter", {}).items():
        if why != "ok":
            issues.note(f"generated_{why}", f"{count} generated question(s) rejected as {why}", count)
    corpus = Corpus("index", Path(meta.get("index", ".")))
    return Dataset(f"synthetic-{folder.name}", corpus, load_queries(folder / "queries.jsonl", issues),
                   load_qrels(folder / "qrels", issues), issues, level="chunk")


def _stdlib_roots() -> list[Path]:
    std = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages", "distutils"}
    return [p for p in sorted(std.iterdir()) if p.is_dir() and p.name not in skip and not p.name.startswith("_")]


def general_set(kind: str, out_root: Path = Path("reports/datasets"), max_queries: int = 300,
                max_docs: int = 3000, seed: int = 0) -> Path:
    """Build (or reuse) a labelled set from text on this machine: `docstrings` (the Python
    standard library's docstrings: summary line -> rest + signature) or `readmes`
    (installed distributions: summary -> README)."""
    from eval import labelled

    tag = f"{kind}-py{sys.version_info.major}{sys.version_info.minor}-q{max_queries}-d{max_docs}-s{seed}"
    out = out_root / tag
    if (out / "meta.json").exists():
        return out
    if kind == "docstrings":
        data = labelled.docstrings(_stdlib_roots(), max_docs=max_docs, max_queries=max_queries, seed=seed)
    elif kind == "readmes":
        site = Path(sysconfig.get_paths()["purelib"])
        data = labelled.readmes(site, max_docs=max_docs, seed=seed)
        keep = list(data.queries)[:max_queries]
        data.queries = {q: data.queries[q] for q in keep}
        data.qrels = {q: data.qrels[q] for q in keep}
    else:
        from eval.datasets import DatasetError

        raise DatasetError(f"Unknown generated set {kind!r}; choose docstrings or readmes.")
    meta = {"kind": kind, "python": sys.version.split()[0], "seed": seed, "documents": len(data.corpus),
            "queries": len(data.queries)}
    return save_beir(out, data.corpus, data.queries, data.qrels, meta)
