"""Installed package versions, the one definition the index manifest, the ranker's manifest,
the saved evaluation sets and the OCR cache key record what they were made with."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """{distribution: version} for each of `names` (distribution names, as pip knows them)
    that is installed, in the order given; names not installed are left out."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def module_versions(modules: Iterable[str]) -> dict[str, str]:
    """{distribution: version} for the distributions that provide each importable top-level
    module in `modules` ("yaml" -> PyYAML); modules no installed distribution provides are left out."""
    dists = metadata.packages_distributions()
    return package_versions(d for m in modules for d in dists.get(m, []))
