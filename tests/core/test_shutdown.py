"""core/shutdown.py: what is registered is closed before a quick exit, weakly held, once."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import shutdown
from core.shutdown import close_all, close_at_exit

REPO = Path(__file__).resolve().parents[2]


class Closeable:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def close(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise OSError("disk gone")


@pytest.fixture(autouse=True)
def _empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutdown, "_closers", [])


def test_alive_targets_are_closed_last_first_and_a_failure_stops_nothing() -> None:
    log: list[str] = []
    a, b, c = Closeable(log, "a"), Closeable(log, "b", fail=True), Closeable(log, "c")
    calls: list[int] = []

    def function() -> None:
        calls.append(1)

    for t in (a, b, c, function, function, a):
        close_at_exit(t)
    close_all()
    assert log == ["c", "b", "a"] and calls == [1]  # each once, the failing one did not stop the rest
    close_all()
    assert log == ["c", "b", "a"]  # nothing left registered


def test_registering_keeps_nothing_alive() -> None:
    log: list[str] = []
    gone, kept = Closeable(log, "gone"), Closeable(log, "kept")
    close_at_exit(gone)
    close_at_exit(kept)
    del gone
    gc.collect()
    close_all()
    assert log == ["kept"]


def test_quick_exit_flushes_output_closes_sqlite_and_keeps_the_code(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from core.sqlite_file import connect
        from core.shutdown import quick_exit
        conn = connect(Path({str(db)!r}))
        conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            conn.execute("CREATE TABLE t(x)")
            conn.execute("INSERT INTO t VALUES (42)")
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]  # still open at the exit
        sys.stdout.write("written but not flushed")
        sys.stderr.write("and on stderr")
        quick_exit(3)
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    assert r.stdout == "written but not flushed" and r.stderr == "and on stderr"
    # closed as a normal exit closes it: the WAL log folded into the database and removed
    assert db.exists() and not (tmp_path / "x.sqlite-wal").exists()
    import sqlite3

    assert sqlite3.connect(db).execute("SELECT x FROM t").fetchall() == [(42,)]
