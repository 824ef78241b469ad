"""core.versions: the one place installed package versions are read (index and ranker
manifests, saved evaluation sets, the OCR cache key)."""

from __future__ import annotations

from importlib import metadata

from core.versions import module_versions, package_versions


def test_installed_distributions_are_listed_in_the_order_given() -> None:
    got = package_versions(["numpy", "pydantic"])
    assert list(got) == ["numpy", "pydantic"]
    assert got["numpy"] == metadata.version("numpy")


def test_a_distribution_not_installed_is_left_out() -> None:
    assert package_versions(["numpy", "no-such-distribution-xyz"]) == {"numpy": metadata.version("numpy")}
    assert package_versions([]) == {}


def test_import_names_map_to_the_distributions_that_provide_them() -> None:
    got = module_versions(("yaml", "no_such_module_xyz"))
    assert got == {"PyYAML": metadata.version("PyYAML")}  # import name `yaml`, distribution PyYAML


def test_the_ocr_cache_key_names_the_engine_and_its_version() -> None:
    from ingest.ocr import engine_version

    assert engine_version() == f"rapidocr-onnxruntime {metadata.version('rapidocr-onnxruntime')}"
