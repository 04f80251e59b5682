"""The fetch step: photos.txt → a folder of whole images and its manifest, with
workers, a progress bar and a summary; `verify` and `export` afterwards."""
import csv
import hashlib
import json
import queue
import threading
import time
from pathlib import Path

from ..files import atomic, write_json
from .download import (PARTIAL, FetchConfig, Outcome, RateLimiter, check_image, connection_pool,
                       fetch_one)
from .listing import parse_photos
from .manifest import add_listing, open_manifest, record, rows


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
    if not listing.photos:           # before the output folder is made
        raise ValueError(f"{photos_txt}: no line of the form `uuid | description | lang`"
                         + (f" ({stats['malformed']} malformed)" if stats["malformed"] else ""))
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
