"""heobs.org photos: photos.txt → deduplicated, concurrent, resumable download.

Report §2: photos.txt has one line per photo *and language*
(`<uuid> | <description> | <lang>`); each photo is at
https://cdn.heobs.org/photo/<uuid>. Here: parse robustly, keep every
description, deduplicate before any request, download concurrently with
retries, keep only files that decode completely, and record everything in a
SQLite manifest next to the images — the single source of truth for later
steps and for resuming after any interrupt (kill -9 included).
"""
import csv
import hashlib
import io
import json
import os
import queue
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from PIL import Image

from .files import atomic, write_json

DEFAULT_BASE_URL = "https://cdn.heobs.org/photo/"
SIZES = ("thumbnail", "small", "medium", "large")  # the CDN's ?size= (heobs client code)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MANIFEST = "manifest.sqlite"
PARTIAL = ".partial"
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp",
              "TIFF": "tif", "MPO": "jpg"}


# ---- photos.txt ------------------------------------------------------------------
@dataclass
class Listing:
    photos: dict = field(default_factory=dict)   # uuid → {lang: description}, file order
    lines: int = 0                               # non-blank lines read
    blank: int = 0
    malformed: list = field(default_factory=list)  # (line number, reason, text)

    def stats(self):
        return {"lines": self.lines, "unique_ids": len(self.photos),
                "malformed": len(self.malformed), "blank": self.blank}


def parse_photos(path):
    """Read photos.txt. The uuid is before the first '|', the language after
    the last; everything between is the description (it may hold '|')."""
    listing = Listing()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:                     # one bad byte spoils its line, not the file
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError as err:
                listing.lines += 1
                listing.malformed.append((number, f"not UTF-8 ({err.reason} at byte "
                                                  f"{err.start})", raw.decode("utf-8", "replace")))
                continue
            if not line:
                listing.blank += 1
                continue
            listing.lines += 1
            parts = line.split("|")
            if len(parts) < 3:
                listing.malformed.append((number, "expected 'uuid | description | lang'", line))
                continue
            uuid = parts[0].strip().lower()
            lang = parts[-1].strip()
            description = "|".join(parts[1:-1]).strip()
            if not UUID_RE.match(uuid):
                listing.malformed.append((number, f"invalid uuid {parts[0].strip()!r}", line))
                continue
            if not lang or " " in lang:
                listing.malformed.append((number, f"invalid language {lang!r}", line))
                continue
            listing.photos.setdefault(uuid, {}).setdefault(lang, description)
    return listing


# ---- the manifest ------------------------------------------------------------------
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


# ---- one download ------------------------------------------------------------------
# urllib3 does the HTTP and the retry policy (statuses worth another try,
# exponential backoff with jitter, Retry-After); the loop below runs every
# attempt itself, so the rate limit, Ctrl-C and the body's deadline apply to
# each one, and a failure while reading the body is retried by the same policy.
RETRY_STATUSES = frozenset({429, *range(500, 600)})


class FetchRetry(urllib3.util.Retry):
    """urllib3's Retry; a Retry-After that is neither seconds nor a date is
    treated as absent (the backoff applies), not as an error."""

    def get_retry_after(self, response):
        try:
            return super().get_retry_after(response)
        except urllib3.exceptions.InvalidHeader:
            return None


def retry_policy(config):
    return FetchRetry(total=config.retries, redirect=5, allowed_methods={"GET"},
                      status_forcelist=RETRY_STATUSES, backoff_factor=config.backoff,
                      backoff_max=config.max_backoff, backoff_jitter=config.backoff,
                      retry_after_max=config.max_backoff, raise_on_status=False)


# One attempt: redirects followed, nothing retried inside urllib3.
ONE_ATTEMPT = urllib3.util.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5,
                                 raise_on_status=False)


class Transient(Exception):
    """Worth another try: a failure while the body was read (cut short, too slow)."""


@dataclass
class Outcome:
    uuid: str
    status: str
    reason: str = None
    http_status: int = None
    attempts: int = 0
    bytes: int = None
    sha256: str = None
    format: str = None
    width: int = None
    height: int = None
    file: str = None


def check_image(body):
    """(format, width, height) if body is a whole image, else raises ValueError(reason)."""
    if not body:
        raise ValueError("empty body")
    head = body[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        raise ValueError("HTML page instead of an image")
    try:
        with Image.open(io.BytesIO(body)) as image:
            fmt, size = image.format, image.size
            image.load()  # decode every pixel: verify() alone misses truncation
    except Image.DecompressionBombError as err:
        raise ValueError(f"image too large ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        text = str(err)
        if "truncated" in text.lower():
            raise ValueError("truncated image") from None
        if "cannot identify" in text:
            raise ValueError("not an image (undecodable data)") from None
        raise ValueError(f"undecodable image ({text})") from None
    return fmt, size[0], size[1]


class RateLimiter:
    """At most `rate` request starts per second across all workers (None: no cap)."""

    def __init__(self, rate=None):
        self.interval = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self):
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            time.sleep(start - now)


@dataclass
class FetchConfig:
    base_url: str = DEFAULT_BASE_URL
    size: str = None              # one of SIZES; None = the original
    concurrency: int = 32
    timeout: float = 30.0         # per request, connection to last byte
    retries: int = 4              # further attempts after the first
    backoff: float = 0.5          # seconds, doubled each retry, with jitter
    max_backoff: float = 30.0
    max_rate: float = None        # requests per second, all workers together
    max_bytes: int = 64 << 20     # a larger body is refused, not buffered
    user_agent: str = "heobs-dec-fetch/1"

    def url(self, uuid):
        url = self.base_url + uuid
        return url + f"?size={self.size}" if self.size else url


class TooLarge(ValueError):
    pass


def connection_pool(config):
    return urllib3.PoolManager(maxsize=config.concurrency, block=False,
                               headers={"User-Agent": config.user_agent})


def read_body(response, config, deadline, stop=None):
    """Every byte by the deadline (the request's start + --timeout): each read
    returns what has arrived (read1) and waits at most the time left, so a
    server that trickles a photo cannot stretch the timeout."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > config.max_bytes:
        raise TooLarge(f"{length} bytes, larger than --max-bytes {config.max_bytes}")
    connection = response.connection
    chunks, total = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Transient(f"timeout: {total} bytes within --timeout {config.timeout:g} s")
        if stop is not None and stop.is_set():
            raise Transient("interrupted")
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(left)
        try:
            chunk = response.read1(65536)
        except urllib3.exceptions.ReadTimeoutError:
            raise Transient(f"timeout: {total} bytes within --timeout {config.timeout:g} s") \
                from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as err:
            raise Transient(f"incomplete body: {total} bytes ({err.__class__.__name__})") from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > config.max_bytes:
            raise TooLarge(f"over {config.max_bytes} bytes (--max-bytes)")
    if length.isdigit() and total != int(length):
        raise Transient(f"incomplete body: {total} of {length} bytes")
    return b"".join(chunks)


def fetch_one(uuid, out_dir, config, limiter, stop=None, http=None):
    """Download one photo to <out_dir>/<uuid>.<ext>, or say why not."""
    out_dir = Path(out_dir)
    http = http or connection_pool(config)
    retry = retry_policy(config)
    outcome = Outcome(uuid, "failed")
    while True:
        if stop is not None and stop.is_set():
            outcome.reason = "interrupted"
            return outcome
        outcome.attempts += 1
        limiter.wait()
        response = error = body = None
        deadline = time.monotonic() + config.timeout
        try:
            response = http.request("GET", config.url(uuid), preload_content=False,
                                    retries=ONE_ATTEMPT,
                                    timeout=urllib3.Timeout(total=config.timeout))
            outcome.http_status = response.status
            if retry.is_retry("GET", response.status, "Retry-After" in response.headers):
                outcome.reason = f"HTTP {response.status}"
            elif response.status >= 400:
                outcome.status = "missing" if response.status in (404, 410) else "failed"
                outcome.reason = f"HTTP {response.status}"
                return outcome
            else:
                body = read_body(response, config, deadline, stop)
        except TooLarge as err:
            outcome.status, outcome.reason = "broken", f"too large: {err}"
            return outcome
        except Transient as err:
            error, outcome.reason = err, str(err)
        except urllib3.exceptions.MaxRetryError as err:       # redirects or the connection
            error, outcome.reason = err.reason, describe(err.reason)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            error, outcome.reason = err, describe(err)
        finally:
            if response is not None:
                response.release_conn() if body is not None else response.close()
        if body is not None:
            return save(outcome, body, response.headers.get("Content-Type", ""), out_dir)
        try:
            retry = retry.increment("GET", config.url(uuid), response=None if error else response,
                                    error=error)
        except urllib3.exceptions.MaxRetryError:
            return outcome
        delay = (retry.get_retry_after(response) if response is not None and not error
                 else None)
        delay = retry.get_backoff_time() if delay is None else delay
        if stop is not None:
            stop.wait(delay)                       # an interrupt wakes it
        else:
            time.sleep(delay)


def describe(err):
    """A transport error in a few words, for the manifest's reason."""
    if isinstance(err, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(err, urllib3.exceptions.MaxRetryError):
        return "too many redirects"
    return f"connection error: {err.__class__.__name__}"


def save(outcome, body, content_type, out_dir):
    """A whole image written beside and renamed into place; anything else is 'broken'."""
    outcome.bytes = len(body)
    try:
        if content_type.startswith("text/") and body:
            raise ValueError(f"{content_type.split(';')[0]} page instead of an image")
        fmt, width, height = check_image(body)
    except ValueError as err:
        outcome.status, outcome.reason = "broken", str(err)
        return outcome
    name = f"{outcome.uuid}.{EXTENSIONS.get(fmt, fmt.lower())}"
    partial = out_dir / PARTIAL / (name + ".part")
    with open(partial, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, out_dir / name)
    outcome.status, outcome.reason = "ok", None
    outcome.sha256 = hashlib.sha256(body).hexdigest()
    outcome.format, outcome.width, outcome.height, outcome.file = fmt, width, height, name
    return outcome


def record(con, outcome):
    con.execute("UPDATE photos SET status=?, reason=?, http_status=?, attempts=attempts+?, "
                "bytes=?, sha256=?, format=?, width=?, height=?, file=?, updated=? WHERE uuid=?",
                (outcome.status, outcome.reason, outcome.http_status, outcome.attempts,
                 outcome.bytes, outcome.sha256, outcome.format, outcome.width, outcome.height,
                 outcome.file, time.time(), outcome.uuid))


def clean_partials(out_dir):
    partial = Path(out_dir) / PARTIAL
    partial.mkdir(parents=True, exist_ok=True)
    for leftover in partial.iterdir():
        leftover.unlink()


def start_workers(todo, out_dir, config, limiter, stop):
    """config.concurrency daemon threads fetch the uuids of `todo`; each outcome
    comes back on the returned queue (an unexpected error as a 'failed' one).
    Daemon threads: an interrupted process does not wait for them."""
    work, results = queue.Queue(), queue.Queue()
    http = connection_pool(config)          # one pool: connections kept alive across photos
    for uuid in todo:
        work.put(uuid)

    def worker():
        while not stop.is_set():
            try:
                uuid = work.get_nowait()
            except queue.Empty:
                return
            try:
                results.put(fetch_one(uuid, out_dir, config, limiter, stop, http))
            except Exception as err:          # a bug or an odd answer: this photo only
                results.put(Outcome(uuid, "failed", reason=f"{err.__class__.__name__}: {err}"))

    for _ in range(min(config.concurrency, max(1, len(todo)))):
        threading.Thread(target=worker, daemon=True).start()
    return results


def fetch(photos_txt, out_dir, config=FetchConfig(), progress=True, log=print):
    """The whole fetch step; returns the summary (also written as summary.json)."""
    from tqdm import tqdm
    out_dir = Path(out_dir)
    started = time.time()
    listing = parse_photos(photos_txt)
    stats = listing.stats()
    log(f"{stats['lines']} lines read, {stats['unique_ids']} unique ids, "
        f"{stats['malformed']} malformed lines")
    for number, reason, _ in listing.malformed[:20]:
        log(f"  line {number}: {reason}")
    con = open_manifest(out_dir)
    add_listing(con, listing)
    clean_partials(out_dir)
    todo = [r["uuid"] for r in rows(con, "status != 'ok'")
            if r["uuid"] in listing.photos]
    limiter = RateLimiter(config.max_rate)
    stop = threading.Event()
    fetched_bytes = 0
    bar = tqdm(total=len(todo), desc="fetch", unit="img", disable=not progress,
               dynamic_ncols=True)
    last_commit = time.monotonic()
    results = start_workers(todo, out_dir, config, limiter, stop)
    try:
        for _ in range(len(todo)):
            while True:
                try:       # wakes each second: what finished is committed even in a stall
                    outcome = results.get(timeout=1.0)
                    break
                except queue.Empty:
                    pass
                finally:
                    if time.monotonic() - last_commit > 1.0:
                        con.commit()
                        last_commit = time.monotonic()
            if outcome.reason != "interrupted":
                record(con, outcome)
            fetched_bytes += outcome.bytes or 0
            bar.update(1)
    except BaseException:
        # Ctrl-C: the queue stops at once; the downloads in flight are left to
        # their daemon threads (their .partial files go on the next run).
        stop.set()
        raise
    finally:
        con.commit()
        bar.close()
    clean_partials(out_dir)
    summary = summarize(con, stats, time.time() - started, len(todo), fetched_bytes)
    con.close()
    write_json(out_dir / "summary.json", summary)
    return summary


def summarize(con, stats, seconds, attempted, fetched_bytes):
    counts = dict(con.execute("SELECT status, COUNT(*) FROM photos GROUP BY status").fetchall())
    by_reason = {}
    for status in ("broken", "failed", "missing"):
        by_reason[status] = dict(con.execute(
            "SELECT reason, COUNT(*) FROM photos WHERE status=? GROUP BY reason ORDER BY 2 DESC",
            (status,)).fetchall())
    return {**stats, "ok": counts.get("ok", 0), "broken": counts.get("broken", 0),
            "missing": counts.get("missing", 0), "failed": counts.get("failed", 0),
            "pending": counts.get("pending", 0), "reasons": by_reason,
            "attempted_this_run": attempted, "seconds": round(seconds, 2),
            "images_per_s": round(attempted / seconds, 2) if seconds else None,
            "mb_per_s": round(fetched_bytes / seconds / 1e6, 3) if seconds else None}


def format_summary(summary):
    lines = [f"lines {summary['lines']}, unique ids {summary['unique_ids']}, "
             f"malformed {summary['malformed']}",
             f"downloaded ok {summary['ok']}, broken {summary['broken']}, missing "
             f"{summary['missing']}, failed {summary['failed']}"]
    for status in ("broken", "failed", "missing"):
        for reason, count in summary["reasons"][status].items():
            lines.append(f"  {status}: {reason}: {count}")
    lines.append(f"{summary['attempted_this_run']} fetched in {summary['seconds']} s "
                 f"({summary['images_per_s']} images/s, {summary['mb_per_s']} MB/s)")
    return "\n".join(lines)


# ---- verify and export ---------------------------------------------------------------
def verify(out_dir):
    """Re-check every 'ok' file against the manifest; mark problems 'broken'
    so the next fetch downloads them again. Returns {reason: count}."""
    out_dir = Path(out_dir)
    con = open_manifest(out_dir, create=False)
    problems = {}
    with con:
        for row in rows(con, "status = 'ok'"):
            path = out_dir / (row["file"] or "")
            reason = None
            if not row["file"] or not path.exists():
                reason = "file missing on disk"
            else:
                body = path.read_bytes()
                if hashlib.sha256(body).hexdigest() != row["sha256"]:
                    reason = "file changed on disk (sha256)"
                else:
                    try:
                        check_image(body)
                    except ValueError as err:
                        reason = f"undecodable on disk ({err})"
            if reason:
                problems[reason] = problems.get(reason, 0) + 1
                con.execute("UPDATE photos SET status='broken', reason=?, updated=? WHERE uuid=?",
                            (reason, time.time(), row["uuid"]))
    con.close()
    return problems


def export(out_dir, csv_path=None):
    """photos.csv: uuid, file, width, height and one description column per language."""
    out_dir = Path(out_dir)
    con = open_manifest(out_dir, create=False)
    ok = rows(con, "status = 'ok'")
    con.close()
    langs = sorted({lang for r in ok for lang in json.loads(r["descriptions"])})
    csv_path = Path(csv_path or out_dir / "photos.csv")
    with atomic(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["uuid", "file", "width", "height"] + [f"description_{l}" for l in langs])
        for r in ok:
            d = json.loads(r["descriptions"])
            writer.writerow([r["uuid"], r["file"], r["width"], r["height"]]
                            + [d.get(l, "") for l in langs])
    return csv_path, len(ok)
