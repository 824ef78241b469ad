"""The machine's load, which a benchmark prints before and after its figures. Figures taken
while other work holds the cores measure that work too, so on a busy machine a benchmark
says so (and `rag bench scale` reports none). Every benchmark reads the load here."""

from __future__ import annotations

import os


def cores() -> int:
    return os.cpu_count() or 1


def load_avgs() -> list[float]:
    """The 1-, 5- and 15-minute load averages (zeros where the platform has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [0.0, 0.0, 0.0]


def load_avg() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    return load_avgs()[0]


def busy(load: float | None = None) -> str | None:
    """Why figures taken now would not be trusted (one sentence), or None on a free machine:
    busy means a 1-minute load average above the core count."""
    load = load_avg() if load is None else load
    n = cores()
    if load <= n:
        return None
    return (f"the machine is busy (1-minute load average {load} above its {n} cores): "
            "no figures reported; run again when it is idle")
