"""LightGBM, imported without scikit-learn and pandas where that is safe.

`import lightgbm` imports scikit-learn (for its sklearn-style estimators) and pandas (for
DataFrame input) whenever they are installed, and those imports are most of its cost: 0.93 s
of a cold `rag search` over an index with a trained ranker, scikit-learn 0.78 s of it. The
trainer calls `lightgbm.train` (eval/train_ranker.py) and the scorer of a model that
core/forest.py does not read only loads a booster and predicts on NumPy arrays, so neither is
needed. (The query path scores with core/forest.py and imports LightGBM not at all.)
"""

from __future__ import annotations

import platform
import sys
import threading
from types import ModuleType

HIDDEN = ("sklearn", "pandas")


def lightgbm() -> ModuleType:
    """The lightgbm module. Imported for the first time, each package of HIDDEN that is not
    loaded yet is made to fail its import while lightgbm loads (lightgbm then leaves out what
    needs it), and stays importable afterwards. On ARM Linux lightgbm wants scikit-learn loaded
    first (both bring an OpenMP runtime: lightgbm-org/LightGBM#6509, static TLS), so there the
    import is left as it is."""
    with _IMPORTING:  # a module half imported by another thread (folds fitted at once) is not it
        return sys.modules.get("lightgbm") or _import()


_IMPORTING = threading.Lock()


def _import() -> ModuleType:
    hide = [m for m in HIDDEN if m not in sys.modules]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        hide = []
    for m in hide:
        sys.modules[m] = None  # type: ignore[assignment]  # makes `import m` raise ImportError
    try:
        import lightgbm as lgb
    finally:
        for m in hide:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]
    return lgb
