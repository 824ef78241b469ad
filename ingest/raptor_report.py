"""What a RAPTOR build did (`TreeReport`): its mode and reason, nodes per level, LLM calls,
what it was expected to cost and how long it took. Apart from `ingest.raptor` so the cost
estimate (`ingest.cost`) can fill it in without importing the builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TreeReport:
    mode: str = "unchanged"  # full | incremental | unchanged | empty
    reason: str = ""
    method: str = "llm"  # llm | extractive (ingest.raptor_summaries resolved)
    why: str = ""  # why that method
    leaves: int = 0
    depth: int = 0
    levels: dict[int, int] = field(default_factory=dict)  # nodes per level
    new: int = 0  # nodes written (new or re-summarised)
    kept: int = 0  # nodes carried over unchanged
    removed: int = 0
    llm_calls: int = 0
    cached: int = 0
    fallbacks: int = 0
    extracted: int = 0  # summaries picked from the children's sentences (extractive method)
    sentences_embedded: int = 0
    llm_seconds: float = 0.0  # spent waiting for LLM calls
    estimate: dict[str, Any] = field(default_factory=dict)  # what the build was expected to cost
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.new or self.removed)

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.reason, "method": self.method, "why": self.why,
                "leaves": self.leaves, "depth": self.depth,
                "nodes_per_level": {str(k): v for k, v in sorted(self.levels.items())}, "new": self.new,
                "kept": self.kept, "removed": self.removed, "llm_calls": self.llm_calls,
                "cached": self.cached, "fallbacks": self.fallbacks, "extracted": self.extracted,
                "sentences_embedded": self.sentences_embedded, "estimate": self.estimate,
                "llm_seconds": round(self.llm_seconds, 2), "seconds": round(self.seconds, 2)}

    def line(self) -> str:
        if self.mode == "unchanged":
            return f"raptor: tree up to date ({self.depth} levels over {self.leaves} leaves)"
        if self.mode == "empty":
            return f"raptor: no leaves; {self.removed} nodes removed"
        per = ", ".join(f"L{k}={v}" for k, v in sorted(self.levels.items()))
        if self.method == "extractive":
            how = (f"extractive, {self.why}: {self.extracted} picked from the children's sentences, "
                   f"{self.cached} cached, 0 LLM calls")
        else:
            how = (f"{self.llm_calls} LLM calls, {self.cached} cached, {self.fallbacks} extractive after "
                   "an unusable reply")
        return (f"raptor: {self.mode} rebuild ({self.reason}): {self.depth} levels [{per}]; {self.new} nodes "
                f"summarised ({how}), {self.kept} kept, {self.removed} removed in {self.seconds:.1f}s")
