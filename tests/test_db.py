"""The database layer's own guarantees that the API tests do not show directly."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from app.db import RESTART_AFTER_FRAMES, create_database

ROW = "x" * 40_000
ROWS = 1200  # about 48 MB of row data, 12 pages each
PAUSE_S = 0.001  # the rest of a request between two commits (a server is slower than this)


def _write_rows(url: str) -> tuple[int, int, int]:
    """Write ROWS large rows, one transaction each with a pause between them as a server's
    requests have; return (bytes written, WAL size at the end, WAL size once the background
    checkpointer has stopped, while the connections are still open)."""
    db = create_database(url, background_checkpoint=True)
    db.start()
    try:
        with db.writer.begin() as conn:
            conn.execute(text("CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT)"))
        for _ in range(ROWS):
            with db.writer.begin() as conn:
                conn.execute(text("INSERT INTO big (body) VALUES (:b)"), {"b": ROW})
            time.sleep(PAUSE_S)
        wal = Path(url.removeprefix("sqlite:///") + "-wal")
        at_end = wal.stat().st_size
        if db.checkpointer is not None:
            db.checkpointer.stop()
        return ROWS * len(ROW), at_end, wal.stat().st_size
    finally:
        db.dispose()


def test_background_checkpoint_keeps_the_wal_bounded_and_truncates_it_on_stop(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/bg.db"
    written, wal_size, after_stop = _write_rows(url)
    # Without any checkpoint the WAL holds every page written (the control below); with the
    # background thread it is reused from its start once it passes the RESTART threshold.
    assert wal_size < written / 2
    assert written / 2 > RESTART_AFTER_FRAMES * 4096
    assert after_stop == 0  # TRUNCATE on stop
    db = create_database(url)
    with db.reader.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM big")).scalar_one() == ROWS
    db.dispose()


def test_without_a_checkpoint_the_wal_grows_with_every_write(tmp_path: Path) -> None:
    """The control for the test above: the server turns SQLite's own checkpoint off, so the
    background thread is all that keeps the WAL from growing."""
    db = create_database(f"sqlite:///{tmp_path}/c.db", background_checkpoint=True)
    # Not started: no thread, and the connections have autocheckpoint off.
    with db.writer.begin() as conn:
        conn.execute(text("CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT)"))
    for _ in range(200):
        with db.writer.begin() as conn:
            conn.execute(text("INSERT INTO big (body) VALUES (:b)"), {"b": ROW})
    assert Path(f"{tmp_path}/c.db-wal").stat().st_size >= 200 * len(ROW)
    db.dispose()
