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
from core.lang import CJK_RANGES, cjk_count
from core.llm import get_llm
from core.settings import Settings
from core.versions import module_versions
from eval.datasets import Corpus, Dataset, Issues, check_path, save_beir

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"^\s*(?:\*\*|#+|[-*]|\d+[.)]|q(?:uestion)?\s*\d*\s*[:.]|问题\s*[:：])\s*", re.I)
_CHATTER = re.compile(r"^(sure|here('s| is| are)|certainly|of course|i('m| am) sorry|as an ai|okay)\b", re.I)
_QWORDS = re.compile(
    r"^(what|why|how|when|where|which|who|whom|whose|is|are|do|does|did|can|could|should|"
    r"would|will|was|were|has|have|in what|according)\b",
    re.I,
)
_ZH_Q = re.compile(r"(什么|为什么|怎么|怎样|如何|哪|多少|几|吗|呢|是否)")

_META = re.compile(
    r"\b(passage|this text|the text|given text|this question|the question|reader|article)\b|段落|这段", re.I
)
_WORD = re.compile(r"[a-z]{4,}")
# Words too common to show that a question is about its passage.
_GENERIC = frozenset(
    """what which where when does have with from that this there their them they then than your about
best good make made much many more most some time ways difference should would could into kind used
using like need know""".split()
)
# Two worked examples: the embedded 135M model copies the form of a shot far better than it
# follows an instruction alone.
SYSTEM = "Write a question that the given text answers."
QUESTION_TOKENS = 48  # one question
PASSAGE_CHARS = 1500  # of the chunk shown: a question is about its opening anyway
SHOTS_EN = [
    (
        "The Eiffel Tower in Paris is 330 metres tall and was finished in 1889.",
        "How tall is the Eiffel Tower?",
    ),
    (
        "Regular exercise lowers blood pressure and improves sleep.",
        "What are the benefits of regular exercise?",
    ),
]
SHOTS_ZH = [
    ("长城全长两万多公里，最早修建于两千多年前。", "长城有多长？"),
    ("经常运动可以降低血压，还能改善睡眠。", "经常运动有什么好处？"),
]


def _norm(s: str) -> str:
    return " ".join(re.sub(rf"[^\w{CJK_RANGES}]+", " ", s.lower()).split())


def _extract(raw: str) -> tuple[str | None, str]:
    lines = [ln.strip() for ln in (raw or "").strip().splitlines() if ln.strip()]
    while lines and _CHATTER.match(lines[0]) and not lines[0].rstrip().endswith(("?", "？")):
        lines.pop(0)  # "Sure! Here is a question:" then the question
    if not lines:
        return None, "empty"
    q = _PREFIX.sub("", lines[0]).strip().strip("\"'“”*`").strip()
    return (None, "chatter") if _CHATTER.match(q) else (q, "ok")


def _shape(q: str, cjk: int) -> str:
    n_words = len(q.split()) if cjk < 3 else cjk // 2
    if n_words < 3 or len(q) < 8:
        return "too_short"
    if n_words > 40 or len(q) > 300:
        return "too_long"
    asks = q.endswith(("?", "？")) or _QWORDS.match(q) or (cjk >= 3 and _ZH_Q.search(q))
    return "ok" if asks else "not_a_question"


def _relevance(q: str, passage: str, cjk: int) -> str:
    if _META.search(q):
        return "about_the_passage"
    nq, np_ = _norm(q), _norm(passage)
    if len(nq) > 20 and nq in np_:
        return "copy_of_passage"
    shared = (set(_WORD.findall(nq)) & set(_WORD.findall(np_))) - _GENERIC
    if cjk >= 3:
        grams = {passage[i : i + 2] for i in range(len(passage) - 1)}
        bigrams = {q[i : i + 2] for i in range(len(q) - 1)} & grams
        shared |= {w for w in bigrams if cjk_count(w)}
    if not shared:
        return "off_topic"
    for sent in re.split(r"(?<=[.!?。！？])\s*", passage):
        if sent.strip() and SequenceMatcher(None, nq, _norm(sent)).ratio() > 0.85:
            return "copy_of_passage"
    return "ok"


def clean_question(raw: str, passage: str) -> tuple[str | None, str]:
    """The question in an LLM reply, or None and why it was rejected."""
    q, why = _extract(raw)
    if q is None:
        return None, why
    cjk = cjk_count(q)
    why = _shape(q, cjk)
    if why == "ok" and not q.endswith(("?", "？")):
        q += "？" if cjk >= 3 else "?"
    if why == "ok":
        why = _relevance(q, passage, cjk)
    return (q, why) if why == "ok" else (None, why)


def messages(passage: str) -> list[dict[str, str]]:
    shots = SHOTS_ZH if cjk_count(passage) > len(passage) / 4 else SHOTS_EN
    out = [{"role": "system", "content": SYSTEM}]
    for text, question in shots:
        out += [{"role": "user", "content": text}, {"role": "assistant", "content": question}]
    return out + [{"role": "user", "content": passage}]


def _key(index: Index, settings: Settings, n: int, seed: int) -> str:
    man = index.manifest()
    blob = json.dumps(
        {
            "index": str(index.path),
            "updated": man.get("updated_at"),
            "n": n,
            "seed": seed,
            "llm": [settings.llm.provider, settings.llm.model, str(settings.llm.gguf_path)],
            "prompt": [SYSTEM, SHOTS_EN, SHOTS_ZH],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_synthetic(
    settings: Settings,
    n: int,
    out_root: Path = Path("reports/synthetic"),
    seed: int = 0,
    max_tokens: int = QUESTION_TOKENS,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
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
        try:
            raw = llm.complete(messages(rec.text[:PASSAGE_CHARS]), max_tokens=max_tokens, temperature=0.0)
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
    meta = {
        "index": str(index.path),
        "index_updated_at": index.manifest().get("updated_at"),
        "seed": seed,
        "asked": n,
        "tried": tried,
        "kept": len(queries),
        "filter": dict(reasons),
        "llm": {"backend": llm.backend, "model": llm.model},
        "level": "chunk",
    }
    save_beir(out, docs, queries, qrels, meta)
    return out


def synthetic_dataset(folder: Path) -> Dataset:
    """A saved synthetic set, evaluated against the current index (qrels name chunk ids)."""
    from eval.datasets import load_qrels, load_queries

    check_path(folder, "synthetic set", "Build one with `rag eval --synthetic N`.")
    issues = Issues()
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else {}
    if meta.get("kept") == 0:
        from eval.datasets import DatasetError

        raise DatasetError(
            f"The synthetic set at {folder} has no usable question: all {meta.get('tried', 0)} LLM replies "
            f"were rejected ({meta.get('filter', {})}); use a larger model (llm.model) or ask for more "
            "questions (--synthetic N), after deleting that folder."
        )
    for why, count in meta.get("filter", {}).items():
        if why != "ok":
            issues.note(f"generated_{why}", f"{count} generated question(s) rejected as {why}", count)
    corpus = Corpus("index", Path(meta.get("index", ".")))
    return Dataset(
        f"synthetic-{folder.name}",
        corpus,
        load_queries(folder / "queries.jsonl", issues),
        load_qrels(folder / "qrels", issues),
        issues,
        level="chunk",
    )


# Installed packages whose docstrings join the standard library's (those present are used).
DOC_PACKAGES = (
    "rich",
    "click",
    "typer",
    "httpx",
    "pydantic",
    "jinja2",
    "langchain_core",
    "bs4",
    "pypdf",
    "docx",
    "sklearn",
    "numpy",
)


def docstring_roots(packages: tuple[str, ...] = DOC_PACKAGES) -> list[Path]:
    """The standard library's packages plus the named installed packages' folders."""
    import importlib.util

    std = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages", "distutils"}
    roots = [
        p for p in sorted(std.iterdir()) if p.is_dir() and p.name not in skip and not p.name.startswith("_")
    ]
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.append(Path(next(iter(spec.submodule_search_locations))))
    return roots


def general_set(
    kind: str,
    out_root: Path = Path("reports/datasets"),
    max_queries: int = 300,
    max_docs: int = 3000,
    seed: int = 0,
) -> Path:
    """Build (or reuse) a labelled set from text on this machine: `docstrings` (the Python
    standard library's docstrings: summary line -> rest + signature) or `readmes`
    (installed distributions: summary -> README)."""
    from eval import labelled

    tag = f"{kind}-py{sys.version_info.major}{sys.version_info.minor}-q{max_queries}-d{max_docs}-s{seed}"
    out = out_root / tag
    if (out / "meta.json").exists():
        return out
    if kind == "docstrings":
        roots = docstring_roots()
        data = labelled.docstrings(roots, max_docs=max_docs, max_queries=max_queries, seed=seed)
    elif kind == "readmes":
        site = Path(sysconfig.get_paths()["purelib"])
        data = labelled.readmes(site, max_docs=max_docs, seed=seed)
        keep = list(data.queries)[:max_queries]
        data.queries = {q: data.queries[q] for q in keep}
        data.qrels = {q: data.qrels[q] for q in keep}
    else:
        from eval.datasets import DatasetError

        raise DatasetError(f"Unknown generated set {kind!r}; choose docstrings or readmes.")
    meta = {
        "kind": kind,
        "python": sys.version.split()[0],
        "seed": seed,
        "documents": len(data.corpus),
        "queries": len(data.queries),
        "packages": module_versions(DOC_PACKAGES) if kind == "docstrings" else {},
    }
    return save_beir(out, data.corpus, data.queries, data.qrels, meta)
