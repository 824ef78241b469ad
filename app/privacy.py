"""Is this setup private? The UI should listen on loopback only, and questions and passages
should go to an LLM (Ollama) and a vector store on this machine; `rag ui` and `rag doctor`
warn when a setting sends them further."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from core.settings import Settings

# Host names a browser uses for the UI on this machine (`server.allowedHosts`).
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "::1"]


def is_loopback(host: str) -> bool:
    """True for localhost (and *.localhost), 127.0.0.0/8 and ::1; names are not resolved."""
    h = host.strip().strip("[]").rstrip(".").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """True for an address that listens on every interface (0.0.0.0, ::, empty)."""
    h = host.strip().strip("[]")
    if not h:
        return True
    try:
        return ipaddress.ip_address(h).is_unspecified
    except ValueError:
        return False


def url_host(url: str) -> str:
    """The host of a URL; a URL written without a scheme ("10.0.0.5:11434") works too."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    return parts.hostname or ""


def allowed_hosts(host: str) -> list[str]:
    """Host names the UI accepts a connection for (DNS-rebinding protection): the loopback
    names, plus `host` itself when it is a specific other address; any ("*") for 0.0.0.0,
    which the user chose to serve every interface (and is warned about)."""
    if is_wildcard(host):
        return ["*"]
    h = host.strip().strip("[]")
    return LOOPBACK_HOSTS + ([h] if h.lower() not in LOOPBACK_HOSTS else [])


def exposure_warnings(settings: Settings) -> list[str]:
    """One sentence per setting that makes the documents or questions leave this machine."""
    warnings = []
    host = settings.ui.host
    if not is_loopback(host):
        who = "every network interface" if is_wildcard(host) else host
        warnings.append(
            f"ui.host {host or '(empty)'} is not a loopback address: the chat UI listens on {who}, so "
            f"anyone who can reach port {settings.ui.port} can read your documents and ask questions; "
            "set ui.host = \"127.0.0.1\" (RAG_UI__HOST) unless you mean to share it."
        )
    ollama = url_host(settings.ollama_url)
    if not is_loopback(ollama):
        warnings.append(
            f"ollama_url {settings.ollama_url} is not on this machine: questions and retrieved passages "
            f"are sent to {ollama or 'that address'} whenever Ollama is used; set RAG_OLLAMA_URL to "
            "http://127.0.0.1:11434 to keep them local."
        )
    if settings.chroma_url and not is_loopback(url_host(settings.chroma_url)):
        warnings.append(
            f"chroma_url {settings.chroma_url} is not on this machine: your documents' chunks and vectors "
            "are stored there; unset RAG_CHROMA_URL to keep the index under index_dir."
        )
    return warnings
