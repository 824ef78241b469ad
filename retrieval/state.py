"""What the query path carries from stage to stage (`retrieval/pipeline.py`).

One `QueryState` flows through every stage: the question, the settings (the routed
collection's after `route`), the index, the queries query translation wrote, the candidates
each retriever found with their per-candidate features, the hits, and the trace. A stage
reads the state, writes its part and appends its trace entry, so any subset of stages can run
(`rag eval` composes them) and `--trace` shows each one."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ConfigError, QueryError
from core.index import Index
from core.llm import LLM, Message
from core.settings import Settings
from core.types import Hit, TraceEntry

Ranked = list[tuple[str, float]]  # (record id, score), best first

# The stages a caller may leave out (`QueryState.skip`), in the order they run: `translate`
# (routing and query translation, the LLM-side stages), `gloss` (cross-lingual keyword
# expansion), the two reranking stages and the passage windows. Search, fusion and the mapping
# to parent chunks always run.
SKIPPABLE = ("translate", "gloss", "coarse", "late", "ltr", "window")
FIRST_STAGE = frozenset({"coarse", "late", "ltr"})  # skip these: plain first-stage search (dense, BM25, RRF)
# What a ranker's training runs without: its own stage, and the passage windows that come after it.
# The ranker orders chunks; trained on windows it saw other texts (a window's length and terms) and
# other lists (a chunk a better window holds is merged away, its label with it) than it ranks.
BEFORE_LTR = frozenset({"ltr", "window"})


@dataclass
class Query:
    """One search query: the question itself or one that query translation produced."""

    text: str
    role: str = "original"  # original | variant | step_back | hyde | sub | translated
    embed_text: str | None = None  # what to embed instead of `text` (HyDE passage)
    vector: np.ndarray | None = None  # a ready vector (e.g. HyDE averaged with the question)
    dense: bool = True  # False: keyword search only (HyDE searches dense with the passage instead)
    keyword_text: str | None = None  # what BM25 searches instead of `text` (glosses added)
    # English key -> the Chinese words `keyword_text` added for it (retrieval/crosslingual.py)
    keyword_groups: dict[str, list[str]] = field(default_factory=dict)
    # BM25 scores the CJK character bigrams of the query (search.cjk_bigrams) unless False: an
    # English question's glosses and dictionary translations are whole words already, and
    # their bigrams only added noise (notes-mixed dev, English questions: passage hit@5 0.904
    # -> 0.827 with them, 0.904 without).
    bigrams: bool = True


@dataclass
class Plan:
    """What to search and how: the queries query translation wrote (or a caller's own), the
    metadata filter routing chose, the merge rule (`rrf`, or `union`: deduplicated, ordered by
    the best per-query score) and the retrievers (`mode`)."""

    queries: list[Query] = field(default_factory=list)
    where: dict[str, Any] | None = None
    merge: str = "rrf"
    mode: str | None = None  # dense | bm25 | hybrid; None: `search.mode`


@dataclass
class QueryState:
    """The one object the query path passes along (see the module docstring)."""

    question: str  # as asked; after `condense`, the standalone question
    settings: Settings
    index: Index
    k: int
    plan: Plan = field(default_factory=Plan)
    skip: Collection[str] = frozenset()  # stage names not to run
    trace: list[TraceEntry] = field(default_factory=list)
    # answering (`answer` off: only the search stages run)
    answer: bool = False
    llm: LLM | None = None
    history: list[Message] | None = None
    strategy: str = "none"
    max_tokens: int | None = None
    translation: Any = None  # retrieval.translate.Translation, when query translation ran
    # what the search stages produce
    lists: list[Ranked] = field(default_factory=list)  # one ranked list per query and retriever
    features: dict[str, dict[str, float]] = field(default_factory=dict)  # per candidate id
    fused: Ranked = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    coarse_ran: bool = False
    retrieve_ms: float = 0.0
    # what the answer stages produce (retrieval/respond.py)
    mode: str = ""  # extractive | generative, as run
    evidence: Any = None  # retrieval.grade.Evidence of the original question
    generation: Any = None  # retrieval.generate.Generation
    abstain_reason: str | None = None  # no_support | no_passages | model_declined
    message: str = ""  # what an abstention says
    hedged: bool = False  # answered on weak support (retrieval/grade.hedgeable)
    note: str = ""  # what a hedged answer adds after it

    def __post_init__(self) -> None:
        # An empty question was searched as such: the index's nearest passages came back, and
        # `rag ask ""` refused with a support figure, as if the question had been asked.
        if not self.question.strip():
            raise QueryError("The question is empty: there is nothing to search for.")
        if self.k < 1:
            raise QueryError(f"k is {self.k}: the number of passages must be at least 1.")
        if unknown := set(self.skip) - set(SKIPPABLE):
            raise ConfigError(f"Unknown stage(s) to skip: {', '.join(sorted(unknown))}; "
                              f"stages that can be left out: {', '.join(SKIPPABLE)}.")

    def runs(self, stage: str) -> bool:
        return stage not in self.skip

    @property
    def queries(self) -> list[Query]:
        if not self.plan.queries:
            self.plan.queries = [Query(self.question)]
        return self.plan.queries

    @property
    def query_vector(self) -> np.ndarray | None:
        """The first query's vector (the question's, or its translation's)."""
        return self.queries[0].vector

    @property
    def keyword_query(self) -> str:
        """What the reranking stages score BM25 and term features with."""
        return self.queries[0].keyword_text or self.question

    @property
    def keyword_groups(self) -> dict[str, list[str]]:
        """Which Chinese words of `keyword_query` translate which English key."""
        return self.queries[0].keyword_groups

    def scores_bigrams(self, q: Query) -> bool:
        """Whether BM25 scores the CJK bigrams of query `q` (search.cjk_bigrams, Query.bigrams)."""
        return self.settings.search.cjk_bigrams and q.bigrams

    @property
    def keyword_bigrams(self) -> bool:
        """Whether the reranking stages score the CJK bigrams of `keyword_query` too."""
        return self.scores_bigrams(self.queries[0])


@dataclass
class RetrievalResult:
    query: str
    hits: list[Hit]
    trace: list[TraceEntry] = field(default_factory=list)
    query_vector: np.ndarray | None = None
    # what the reranking stages scored term features with (the question, or its glossed form):
    # a ranker is trained on the features the query path computes
    keyword_query: str = ""

    def timings(self) -> dict[str, float]:
        return timings(self.trace)


def timings(trace: list[TraceEntry]) -> dict[str, float]:
    """Milliseconds per stage name, summed over the trace's entries."""
    out: dict[str, float] = {}
    for t in trace:
        out[t.stage] = round(out.get(t.stage, 0.0) + t.ms, 2)
    return out


class Timer:
    """`with Timer(trace, "stage") as detail:` appends a TraceEntry with the elapsed ms."""

    def __init__(self, trace: list[TraceEntry], stage: str) -> None:
        self.trace, self.stage = trace, stage
        self.detail: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        self.t0 = time.perf_counter()
        return self.detail

    def __exit__(self, *exc: object) -> None:
        self.trace.append(TraceEntry(self.stage, (time.perf_counter() - self.t0) * 1000, self.detail))


Search = Callable[[str], RetrievalResult]  # one more search with a state's settings and filter
