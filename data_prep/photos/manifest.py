"""The fetch folder's SQLite manifest: one row per uuid, the single source of
truth for later steps; `open_readonly` for those that only read it."""
import json
import sqlite3
import time
from pathlib import Path

MANIFEST = "manifest.sqlite"


SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
  uuid TEXT PRIMARY KEY,
  descriptions TEXT NOT NULL,      -- JSON {lang: description}
  status TEXT NOT NULL,            -- pending, ok, broken, missing, failed
  reason TEXT,
  http_status INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER,
  sha256 TEXT,
  format TEXT,
  width INTEGER,
  height INTEGER,
  file TEXT,
  first_seen REAL NOT NULL,
  updated REAL NOT NULL
);
"""


def open_manifest(out_dir, create=True):
    """The fetch folder's manifest; create=False: it must exist already (verify,
    export, a photo folder read back), and nothing is created on a typo."""
    out_dir = Path(out_dir)
    if not create and not (out_dir / MANIFEST).exists():
        raise FileNotFoundError(f"no fetch manifest in {out_dir} ({MANIFEST}): "
                                "is this the --out folder of a fetch?")
    out_dir.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(out_dir / MANIFEST)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(SCHEMA)
    except sqlite3.DatabaseError as err:        # garbage or another program's file
        con.close()
        raise ValueError(f"{out_dir / MANIFEST} is not a fetch manifest (SQLite: {err}); "
                         "move it away to start again") from None
    return con


def add_listing(con, listing):
    now = time.time()
    with con:
        for uuid, descriptions in listing.photos.items():
            con.execute("INSERT INTO photos (uuid, descriptions, status, first_seen, updated) "
                        "VALUES (?, ?, 'pending', ?, ?) ON CONFLICT(uuid) DO UPDATE SET "
                        "descriptions = excluded.descriptions",
                        (uuid, json.dumps(descriptions, ensure_ascii=False), now, now))


def rows(con, where="1", params=()):
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM photos WHERE {where} ORDER BY rowid",
                                             params)]
    finally:
        con.row_factory = None


def record(con, outcome):
    con.execute("UPDATE photos SET status=?, reason=?, http_status=?, attempts=attempts+?, "
                "bytes=?, sha256=?, format=?, width=?, height=?, file=?, updated=? WHERE uuid=?",
                (outcome.status, outcome.reason, outcome.http_status, outcome.attempts,
                 outcome.bytes, outcome.sha256, outcome.format, outcome.width, outcome.height,
                 outcome.file, time.time(), outcome.uuid))




def open_readonly(folder):
    """The manifest of a fetch folder, read only (the review page, photo
    listings): nothing of it is ever written through this connection."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no fetch manifest in {folder} ({MANIFEST})")
    try:
        con = sqlite3.connect(f"file:{path.absolute()}?mode=ro", uri=True)
        con.execute("SELECT 1 FROM photos LIMIT 1")
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{path} is not a fetch manifest (SQLite: {err})") from None
    return con
