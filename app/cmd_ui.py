"""`rag ui`: start the Streamlit chat (app/ui.py) on loopback, headless, without usage stats.

Private by default: bound to ui.host (127.0.0.1), CORS and XSRF protection on, and WebSocket
connections accepted only for the loopback host names (`server.allowedHosts`, which guards against
DNS rebinding). The repository's `.streamlit/config.toml` sets the same for a plain
`streamlit run app/ui.py`. A ui.host or Ollama URL off this machine is warned about."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from core.errors import ConfigError

if TYPE_CHECKING:  # loaded in the command: every `rag` start imports this module (app/cmd_index.py)
    from core.settings import Settings

UI_SCRIPT = Path(__file__).resolve().parent / "ui.py"


def streamlit_command(settings: Settings, port: int | None = None) -> list[str]:
    """The `streamlit run` command line for these settings."""
    from app.privacy import allowed_hosts

    port = settings.ui.port if port is None else port
    if not 0 < port < 65536:
        raise ConfigError(f"ui.port {port} is not a TCP port; choose one between 1 and 65535 (RAG_UI__PORT).")
    return [
        sys.executable, "-m", "streamlit", "run", str(UI_SCRIPT),
        "--server.address", settings.ui.host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--server.maxUploadSize", str(max(1, math.ceil(settings.ui.max_upload_mb))),
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--server.enableCORS", "true",
        "--server.enableXsrfProtection", "true",
        *[arg for h in allowed_hosts(settings.ui.host) for arg in ("--server.allowedHosts", h)],
    ]


def start_resident(settings: Settings) -> subprocess.Popen[bytes] | None:
    """`rag serve` in the background for this index (ui.serve), unless one runs already or there is
    no index yet to keep loaded. Same environment and folder: the same settings fingerprint."""
    if not settings.ui.serve or not (settings.index_path / "manifest.json").exists():
        return None
    from app.serve_client import find_server

    if find_server(settings.index_path) is not None:
        return None
    return subprocess.Popen([sys.executable, "-m", "app.cli", "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_resident(resident: subprocess.Popen[bytes] | None) -> None:
    if resident is None or resident.poll() is not None:
        return
    resident.terminate()  # SIGTERM: it removes its serve.json
    try:
        resident.wait(timeout=10)
    except subprocess.TimeoutExpired:
        resident.kill()
        resident.wait()


def ui_cmd(
    port: int = typer.Option(None, "--port", help="Port to listen on (default ui.port, 8501)."),
) -> None:
    """Start the chat UI in your browser (Streamlit, bound to ui.host, 127.0.0.1 by default)."""
    from app.output import console, out
    from app.privacy import exposure_warnings
    from core.settings import load_settings

    settings = load_settings()
    cmd = streamlit_command(settings, port)
    host = f"[{settings.ui.host}]" if ":" in settings.ui.host else settings.ui.host  # IPv6
    addr = f"http://{host}:{cmd[cmd.index('--server.port') + 1]}"
    for w in exposure_warnings(settings):
        console.print(f"warning: {w}", style="yellow", markup=False, highlight=False)
    out.print(f"Chat UI at {addr}  (index {settings.index_path}; Ctrl+C stops it)",
              markup=False, highlight=False)
    sys.stdout.flush()
    resident = start_resident(settings)
    if resident is not None:
        out.print("rag serve starts beside it: `rag search` and `rag ask` answer fast while the UI is open "
                  "(ui.serve = false turns this off)", markup=False, highlight=False)
    try:
        proc = subprocess.Popen(cmd)
    except BaseException:
        _stop_resident(resident)
        raise

    def _stop(signum: int, frame: object) -> None:  # `kill <rag pid>` stops the server too
        proc.terminate()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _stop)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        raise
    finally:
        _stop_resident(resident)
    if rc:
        raise typer.Exit(rc)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui_cmd)
