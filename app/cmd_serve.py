"""`rag serve`: keep the models and the index loaded so `rag search` and `rag ask` answer fast."""

from __future__ import annotations

import typer


def serve_cmd(
    port: int = typer.Option(0, "--port", help="TCP port on 127.0.0.1 (default 0: any free one)."),
) -> None:
    """Keep the models, Chroma and the keyword index loaded; `rag search` and `rag ask` use it.

    Listens on 127.0.0.1 only; clients find it through <index_dir>/serve.json (readable by you
    only: it holds the token every request must carry). Ctrl+C or SIGTERM stops it."""
    import sys

    from app.output import console
    from app.serve import serve_forever, start
    from core.settings import load_settings

    settings = load_settings()
    console.print(f"rag serve: loading the models and the index at {settings.index_path} …",
                  markup=False, highlight=False)
    running, warm = start(settings, port)
    console.print(f"rag serve: {warm}; listening on 127.0.0.1:{running.info.port} (pid {running.info.pid}); "
                  "`rag search` and `rag ask` now use it. Ctrl+C stops it.", markup=False, highlight=False)
    sys.stderr.flush()
    serve_forever(running)
    console.print("rag serve: stopped", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
