"""Name -> factory registries of the swappable backends (LLM, embedder, vector store): one
lookup, one message for a name the registry does not know."""

from __future__ import annotations

from typing import TypeVar

from core.errors import ConfigError

F = TypeVar("F")


def choose(registry: dict[str, F], name: str, setting: str, error: type[Exception] = ConfigError) -> F:
    """The factory registered as `name`; unknown: `error` naming the setting and the choices."""
    factory = registry.get(name)
    if factory is None:
        raise error(f"Unknown {setting} '{name}'; choose one of: {', '.join(registry)}.")
    return factory
