"""The review's decisions: a SQLite file (WAL) written at every key press.

`decisions` is the log (who said what of which file, when, from which
source); `labels` is each file's current label, the newest decision not
undone. Each action is one transaction (BEGIN IMMEDIATE), so a killed server,
a reloaded page or a second server on the same store loses nothing and never
leaves half an action. Items are keyed by their absolute file path, which is
what `labels.csv` (the format `prepare` reads) needs.
"""
import csv
import hashlib
import sqlite3
import threading
import time
from pathlib import Path

from data_prep.files import atomic

UNSURE = "unsure"          # `x`: not sure / reject; never exported as a class
# PRAGMA application_id of a store `dec review` made ("heOb"): any other
# SQLite file (a fetch manifest, someone's database) is never written to.
APPLICATION_ID = 0x68654F62
TABLES = {"decisions", "labels", "group_names", "group_name_log", "exports"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY,
  batch INTEGER NOT NULL,          -- one key press / button: undone together
  action TEXT NOT NULL,            -- label, accept, rename
  item TEXT NOT NULL,              -- absolute file path
  label TEXT NOT NULL,
  source TEXT NOT NULL,            -- the source the page showed
  grp TEXT NOT NULL,               -- its group (cluster, predicted class)
  time REAL NOT NULL,
  undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_batch ON decisions (batch);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions (item);
CREATE TABLE IF NOT EXISTS labels (
  item TEXT PRIMARY KEY,
  label TEXT NOT NULL,
  decision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exports (      -- labels CSVs this store wrote, to replace only those
  path TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL,
  time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS group_name_log (  -- every rename, so an undo restores the one before
  source TEXT NOT NULL,
  grp TEXT NOT NULL,
  label TEXT NOT NULL,
  batch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS group_names (   -- a DEC cluster renamed to a class (§8.3)
  source TEXT NOT NULL,
  grp TEXT NOT NULL,
  label TEXT NOT NULL,
  batch INTEGER NOT NULL,
  PRIMARY KEY (source, grp)
);
"""


def check_store(path):
    """An existing file as a review store: one `dec review` made (its
    application_id, or the tables of a store made before it had one); read
    only, so a refused file is left exactly as it was."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise ValueError(f"{path} is an empty file, not a review store: name a new file for "
                         "--labels (it is left untouched)")
    try:
        con = sqlite3.connect(f"file:{Path(path).absolute()}?mode=ro", uri=True)
        try:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as err:
        raise ValueError(f"{path} is not a review store (SQLite: {err}): name a new file "
                         "for --labels") from None
    earlier = app_id == 0 and {"decisions", "labels", "group_names"} <= tables <= TABLES
    if app_id != APPLICATION_ID and not earlier:
        raise ValueError(f"{path} is an SQLite file that `dec review` did not make: name a "
                         "new file for --labels (it is left untouched)")


def refuse_export(path):
    raise ValueError(f"{path} exists and is not an unchanged export of this review: "
                     "export to a new file (nothing is overwritten)")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Store:
    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{path} is a folder: --labels names the review's SQLite file")
        if self.path.exists():
            check_store(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, shared by the server's threads under a lock.
        self.con = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self.lock = threading.Lock()
        try:
            self.con.execute("PRAGMA journal_mode=WAL")
            self.con.execute("PRAGMA synchronous=FULL")     # a decision survives a power cut
            self.con.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self.con.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:
            self.con.close()
            raise ValueError(f"{path} is not a review store (SQLite): {err}") from None

    def close(self):
        self.con.close()

    def version(self):
        """Changes when another connection (another server) commits."""
        with self.lock:
            return self.con.execute("PRAGMA data_version").fetchone()[0]

    def _write(self, work):
        with self.lock:
            self.con.execute("BEGIN IMMEDIATE")
            try:
                result = work(self.con)
                self.con.execute("COMMIT")
                return result
            except BaseException:
                self.con.execute("ROLLBACK")
                raise

    def decide(self, items, label, source, action="label"):
        """Label [(item, group)] in one batch; returns the batch number."""
        return self._write(lambda con: self._decide_in(con, items, label, source, action))

    def rename(self, source, group, label, items):
        """A cluster named as a class, and its not yet reviewed items labelled,
        in one batch."""
        def work(con):
            batch = self._decide_in(con, items, label, source, "rename")
            con.execute("INSERT INTO group_names (source, grp, label, batch) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(source, grp) DO UPDATE SET label = excluded.label, "
                        "batch = excluded.batch", (source, group, label, batch))
            con.execute("INSERT INTO group_name_log (source, grp, label, batch) "
                        "VALUES (?, ?, ?, ?)", (source, group, label, batch))
            return batch
        return self._write(work)

    def _decide_in(self, con, items, label, source, action):
        now = time.time()
        batch = con.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM decisions").fetchone()[0]
        if not items:        # a rename of a cluster already reviewed: still one undo step
            con.execute("INSERT INTO decisions (batch, action, item, label, source, grp, time) "
                        "VALUES (?, ?, '', '', ?, '', ?)", (batch, action, source, now))
        for item, group in items:
            cursor = con.execute(
                "INSERT INTO decisions (batch, action, item, label, source, grp, time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (batch, action, item, label, source, group, now))
            con.execute("INSERT INTO labels (item, label, decision) VALUES (?, ?, ?) "
                        "ON CONFLICT(item) DO UPDATE SET label = excluded.label, "
                        "decision = excluded.decision", (item, label, cursor.lastrowid))
        return batch

    def undo(self, source):
        """Undo the newest batch of this source not undone yet; returns the
        items it touched (each back to its newest remaining decision)."""
        def work(con):
            row = con.execute("SELECT MAX(batch) FROM decisions WHERE source = ? AND undone = 0",
                              (source,)).fetchone()
            if row[0] is None:
                return []
            batch = row[0]
            items = [r[0] for r in con.execute(
                "SELECT DISTINCT item FROM decisions WHERE batch = ? AND item != ''", (batch,))]
            con.execute("UPDATE decisions SET undone = 1 WHERE batch = ?", (batch,))
            renamed = con.execute("SELECT source, grp FROM group_names WHERE batch = ?",
                                  (batch,)).fetchall()
            con.execute("DELETE FROM group_name_log WHERE batch = ?", (batch,))
            con.execute("DELETE FROM group_names WHERE batch = ?", (batch,))
            for src, grp in renamed:          # the name it had before, if any
                before = con.execute("SELECT label, batch FROM group_name_log WHERE source = ? "
                                     "AND grp = ? ORDER BY batch DESC LIMIT 1",
                                     (src, grp)).fetchone()
                if before:
                    con.execute("INSERT INTO group_names (source, grp, label, batch) "
                                "VALUES (?, ?, ?, ?)", (src, grp, *before))
            for item in items:
                newest = con.execute("SELECT id, label FROM decisions WHERE item = ? AND undone = 0 "
                                     "ORDER BY id DESC LIMIT 1", (item,)).fetchone()
                if newest:
                    con.execute("UPDATE labels SET label = ?, decision = ? WHERE item = ?",
                                (newest[1], newest[0], item))
                else:
                    con.execute("DELETE FROM labels WHERE item = ?", (item,))
            return items
        return self._write(work)

    def labels(self):
        """{item: label} of every reviewed item."""
        with self.lock:
            return dict(self.con.execute("SELECT item, label FROM labels"))

    def labels_of(self, items):
        with self.lock:
            found = {}
            for start in range(0, len(items), 500):
                chunk = items[start:start + 500]
                found.update(self.con.execute(
                    f"SELECT item, label FROM labels WHERE item IN ({','.join('?' * len(chunk))})",
                    chunk))
            return found

    def group_names(self, source):
        with self.lock:
            return dict(self.con.execute("SELECT grp, label FROM group_names WHERE source = ?",
                                         (source,)))

    def check_export(self, path):
        """`path` may take an export: a new file, or one this store wrote and
        nobody changed since (its SHA-256 as recorded). Returns its key."""
        path = Path(path)
        key = str(path.resolve())
        if key == str(self.path.resolve()):
            raise ValueError(f"{path} is the review store itself: export to another file")
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder: the export is a CSV file")
        if path.exists():
            with self.lock:
                row = self.con.execute("SELECT sha256 FROM exports WHERE path = ?",
                                       (key,)).fetchone()
            if row is None or row[0] != sha256_of(path):
                refuse_export(path)
        return key

    def export(self, path):
        """labels.csv (path,label), the format `prepare` reads; unsure ones left
        out. Returns the number of rows."""
        key = self.check_export(path)
        with self.lock:
            rows = self.con.execute("SELECT item, label FROM labels WHERE label != ? "
                                    "ORDER BY item", (UNSURE,)).fetchall()
        with atomic(path) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "label"])
                writer.writerows(rows)
            digest = sha256_of(tmp)
            # Recorded before the rename: a crash between the two leaves a
            # record of a file that is not there, which refuses nothing.
            self._write(lambda con: con.execute(
                "INSERT INTO exports (path, sha256, time) VALUES (?, ?, ?) ON CONFLICT(path) "
                "DO UPDATE SET sha256 = excluded.sha256, time = excluded.time",
                (key, digest, time.time())))
        return len(rows)
