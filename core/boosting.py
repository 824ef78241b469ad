"""LightGBM, imported without scikit-learn where that is safe.

`import lightgbm` imports scikit-learn whenever it is installed (for its sklearn-style
estimators), and that import is most of its cost: 0.93 s of a cold `rag search` over an index
with a trained ranker, of which scikit-learn 0.78 s. The query path only loads a booster and
the trainer calls `lightgbm.train` (eval/train_ranker.py), so neither needs it.
"""

from __future__ import annotations

import platform
import sys
from types import ModuleType


def lightgbm() -> ModuleType:
    """The lightgbm module. Imported for the first time while scikit-learn is not loaded, it is
    imported with `import sklearn` failing (lightgbm then leaves out its sklearn estimators),
    and scikit-learn stays importable afterwards. On ARM Linux lightgbm wants scikit-learn
    loaded first (both bring an OpenMP runtime: lightgbm-org/LightGBM#6509, static TLS), so
    there the import is left as it is."""
    loaded = sys.modules.get("lightgbm")
    if loaded is not None:
        return loaded
    if "sklearn" in sys.modules or platform.machine().lower() not in ("x86_64", "amd64"):
        import lightgbm as lgb

        return lgb
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` raise ImportError
    try:
        import lightgbm as lgb
    finally:
        if "sklearn" in sys.modules and sys.modules["sklearn"] is None:
            del sys.modules["sklearn"]
    return lgb
