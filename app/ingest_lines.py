"""How an ingest report is worded: the same lines in `rag ingest` and in the UI."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings


def shown(path: str, base: Path) -> str:
    """A path relative to `base` (the working folder, or the UI's uploads folder) when under it."""
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path


def located(path: str, error: str, base: Path) -> str:
    """The error with the file's path, not only its name: two folders can each hold a
    `notes.md`. Loader messages start with the bare name; that name is swapped for the path."""
    where, name = shown(path, base), Path(path).name
    if error.startswith(path) or error.startswith(where):
        return error
    if name and error.startswith(name):
        return where + error[len(name):]
    return f"{where}: {error}"


def report_lines(report: object, settings: Settings, base: Path) -> tuple[list[str], list[str], str]:
    """(failures, warnings, summary) as plain text; callers escape them for rich."""
    from ingest.pipeline import IngestReport

    assert isinstance(report, IngestReport)
    s = report.summary()
    failures = [f"failed {located(f.path, str(f.error), base)}" for f in report.failed]
    warnings = [f"warning {shown(f.path, base)}: {w}" for f in report.files for w in f.warnings]
    summary = (f"{s['added']} added, {s['changed']} changed, {s['unchanged']} unchanged, "
               f"{s['failed']} failed, {s['removed']} removed; "
               f"{s['chunks_written']} chunks written in {s['seconds']}s -> {settings.index_path}")
    if report.skipped:  # the folders' files of other types, left out: say which, once
        n = sum(report.skipped.values())
        kinds = ", ".join(f"{k} {v}" for k, v in list(report.skipped.items())[:6])
        more = ", ..." if len(report.skipped) > 6 else ""
        summary += (f"\n{n} file{'s' if n != 1 else ''} of other types left out ({kinds}{more}); "
                    "ingest.extensions lists the types read")
    return failures, warnings, summary
