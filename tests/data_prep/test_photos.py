"""Downloading and the fetch step (data_prep.photos.download, .fetch) against a
loopback server that injects faults per uuid; parsing is test_photos_listing.py,
the manifest test_photos_manifest.py."""
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from data_prep import photos
from tests.helpers import ctrl_c_able

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def uid(n):
    return f"5a36f382-dbdf-11e6-95fd-{n:012x}"


def image_bytes(fmt="JPEG", size=(40, 30), color=(200, 30, 60)):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


JPEG, PNG = image_bytes(), image_bytes("PNG", (17, 23))
# A JPEG with valid headers whose entropy-coded data is garbage.
CORRUPT = JPEG[:len(JPEG) // 3] + bytes(range(256)) * 4 + b"\xff\xd9"

OK_JPEG, OK_PNG, NOT_FOUND, GONE, FLAKY_500, RETRY_AFTER, RESET, SLOW, TRUNC_LEN, \
    TRUNC_NOLEN, HTML, EMPTY, CORRUPT_JPEG, FORBIDDEN = (uid(i) for i in range(1, 15))


class PhotoServer(BaseHTTPRequestHandler):
    behaviour = {}
    requests = {}
    sent = {}                    # bytes of a trickled body written before the client left
    latency = 0.0
    lock = threading.Lock()
    hold_after = None            # requests after this many wait until `release` is set
    release = threading.Event()

    def log_message(self, *args):
        pass

    def send_body(self, body, content_type="image/jpeg", length=True, status=200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is True:
            self.send_header("Content-Length", str(len(body)))
        elif length:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            self.answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts): expected here

    def answer(self):
        uuid = self.path.split("/")[-1].split("?")[0]
        with self.lock:
            seen = self.requests.setdefault(uuid, [])
            seen.append(time.monotonic())
            count = len(seen)
            total = sum(len(times) for times in self.requests.values())
        if self.hold_after is not None and total > self.hold_after:
            self.release.wait(60)
        if self.latency:
            time.sleep(self.latency)
        kind = self.behaviour.get(uuid, "jpeg")
        if kind == "jpeg":
            self.send_body(JPEG)
        elif kind == "png":
            self.send_body(PNG, "image/png")
        elif kind == "404":
            self.send_error(404)
        elif kind == "410":
            self.send_error(410)
        elif kind == "403":
            self.send_error(403)
        elif kind == "500-then-ok":
            self.send_error(500) if count == 1 else self.send_body(JPEG)
        elif kind == "503-retry-after":
            if count == 1:
                self.send_response(503)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_body(JPEG)
        elif kind == "reset":
            self.close_connection = True  # no response at all
        elif kind == "slow":
            self.release.wait(60)      # answers only after the client gave up (no race)
            self.send_body(JPEG)
        elif kind == "truncated-with-length":
            self.send_body(JPEG[: len(JPEG) // 2], length=len(JPEG))
        elif kind == "truncated-no-length":
            self.send_body(JPEG[: len(JPEG) // 2], length=False)
        elif kind == "html":
            self.send_body(b"<!DOCTYPE html><html><body>Not here</body></html>", "text/html")
        elif kind == "html-as-image":
            self.send_body(b"<html><body>oops</body></html>", "image/jpeg")
        elif kind == "empty":
            self.send_body(b"")
        elif kind == "corrupt":
            self.send_body(CORRUPT)
        elif kind == "trickle":                  # a byte every 20 ms: 700 bytes in 14 s
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            for n in range(len(JPEG)):
                self.wfile.write(JPEG[n:n + 1])
                self.wfile.flush()
                with self.lock:
                    self.sent[uuid] = n + 1
                time.sleep(0.02)
        elif kind.startswith("status-"):         # status-<code>-<times>[-<retry-after>]
            _, code, times, *after = kind.split("-", 3)
            if count <= int(times):
                self.send_response(int(code))
                if after:
                    self.send_header("Retry-After", after[0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_body(JPEG)
        elif kind == "long-length":              # announces 2000 bytes, sends 50, waits
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "2000")
            self.end_headers()
            self.wfile.write(JPEG[:50])
            self.wfile.flush()
            self.release.wait(60)
        elif kind == "bad-length":
            self.send_body(JPEG, length="abc")
        elif kind == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/photo/{OK_JPEG}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "redirect-loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()


class RoomyServer(ThreadingHTTPServer):
    # A listen queue for every connection the client opens at once (8): with
    # the default 5, a busy machine's kernel drops a SYN, the retransmit comes
    # after 1 s, past the tests' 0.5 s timeout, and an attempt is lost that the
    # server never saw (a status test then counted one 502 too few).
    request_queue_size = 64


@pytest.fixture
def server():
    PhotoServer.behaviour, PhotoServer.requests, PhotoServer.latency = {}, {}, 0.0
    PhotoServer.sent = {}
    PhotoServer.hold_after, PhotoServer.release = None, threading.Event()
    httpd = RoomyServer(("127.0.0.1", 0), PhotoServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}/photo/"
    PhotoServer.release.set()
    httpd.shutdown()
    httpd.server_close()


def config(base, **kw):
    defaults = dict(base_url=base, concurrency=8, timeout=0.5, retries=2, backoff=0.05)
    defaults.update(kw)
    return photos.FetchConfig(**defaults)


def manifest(out):
    con = sqlite3.connect(out / photos.MANIFEST)
    con.row_factory = sqlite3.Row
    result = {r["uuid"]: dict(r) for r in con.execute("SELECT * FROM photos")}
    con.close()
    return result


# ---- parsing ----------------------------------------------------------------------
def test_a_jpeg_cut_in_its_image_data_is_broken(server, tmp_path):
    """Its headers are whole, so it opens; only decoding every pixel finds the cut."""
    import numpy as np
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
                    ).save(buf, "JPEG", quality=90)
    cut = buf.getvalue()[:len(buf.getvalue()) * 3 // 4]
    with Image.open(io.BytesIO(cut)) as image:
        assert image.size == (160, 120)                      # the headers read fine
    with pytest.raises(ValueError, match="truncated image"):
        photos.check_image(cut)


# ---- faults -----------------------------------------------------------------------
def test_fault_injection_statuses_reasons_and_retries(server, tmp_path):
    httpd, base = server
    PhotoServer.behaviour = {
        OK_PNG: "png", NOT_FOUND: "404", GONE: "410", FLAKY_500: "500-then-ok",
        RETRY_AFTER: "503-retry-after", RESET: "reset", SLOW: "slow",
        TRUNC_LEN: "truncated-with-length", TRUNC_NOLEN: "truncated-no-length",
        HTML: "html", EMPTY: "empty", CORRUPT_JPEG: "corrupt", FORBIDDEN: "403"}
    ids = [OK_JPEG] + list(PhotoServer.behaviour)
    lines = [f"{u} | photo {i} | eng" for i, u in enumerate(ids)] + [f"{OK_JPEG} | ảnh | vie"]
    (tmp_path / "photos.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    # A 2 s timeout: the slow answer never comes in time, and every other one
    # does, however busy the machine.
    summary = photos.fetch(tmp_path / "photos.txt", out, config(base, timeout=2.0),
                           progress=False, log=lambda *a: None)
    m = manifest(out)
    status = {u: (m[u]["status"], m[u]["reason"]) for u in ids}
    assert status[OK_JPEG] == ("ok", None) and status[OK_PNG] == ("ok", None)
    assert (out / f"{OK_JPEG}.jpg").read_bytes() == JPEG
    assert (out / f"{OK_PNG}.png").read_bytes() == PNG
    assert (m[OK_PNG]["format"], m[OK_PNG]["width"], m[OK_PNG]["height"]) == ("PNG", 17, 23)
    assert status[NOT_FOUND] == ("missing", "HTTP 404") and status[GONE] == ("missing", "HTTP 410")
    assert status[FORBIDDEN] == ("failed", "HTTP 403")
    assert status[FLAKY_500] == ("ok", None) and m[FLAKY_500]["attempts"] == 2
    assert status[RETRY_AFTER] == ("ok", None)
    first, second = PhotoServer.requests[RETRY_AFTER]
    assert second - first >= 0.8          # Retry-After: 1 honoured (less the latency)
    assert status[RESET][0] == "failed" and "connection" in status[RESET][1]
    assert status[SLOW][0] == "failed" and "timeout" in status[SLOW][1]
    assert status[TRUNC_LEN][0] == "failed" and "incomplete body" in status[TRUNC_LEN][1]
    assert status[TRUNC_NOLEN] == ("broken", "truncated image")
    assert status[HTML] == ("broken", "text/html page instead of an image")
    assert status[EMPTY] == ("broken", "empty body")
    assert status[CORRUPT_JPEG][0] == "broken"
    # Retries happen, and stop: 1 + retries attempts for the transient faults,
    # one request for 404/410/403 and for answers that are not images.
    for u in (RESET, SLOW, TRUNC_LEN):
        assert len(PhotoServer.requests[u]) == 3 and m[u]["attempts"] == 3
    for u in (NOT_FOUND, GONE, FORBIDDEN, HTML, EMPTY, CORRUPT_JPEG, OK_JPEG):
        assert len(PhotoServer.requests[u]) == 1
    # Nothing broken or partial is kept.
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".jpg", ".png")) == \
        sorted([f"{OK_JPEG}.jpg", f"{OK_PNG}.png", f"{FLAKY_500}.jpg", f"{RETRY_AFTER}.jpg"])
    assert list((out / photos.PARTIAL).iterdir()) == []
    assert summary["ok"] == 4 and summary["missing"] == 2 and summary["broken"] == 4
    assert summary["failed"] == 4 and summary["unique_ids"] == 14 and summary["lines"] == 15
    assert (out / "summary.json").exists()


def test_duplicate_lines_cause_one_request_per_uuid(server, tmp_path):
    _, base = server
    ids = [uid(100 + i) for i in range(20)]
    lines = [f"{u} | mô tả | vie\n{u} | description | fra" for u in ids]
    (tmp_path / "photos.txt").write_text("\n".join(lines * 2) + "\n", encoding="utf-8")
    photos.fetch(tmp_path / "photos.txt", tmp_path / "out", config(base), progress=False,
                 log=lambda *a: None)
    assert sorted(PhotoServer.requests) == sorted(ids)
    assert all(len(v) == 1 for v in PhotoServer.requests.values())
    m = manifest(tmp_path / "out")
    assert eval_json(m[ids[0]]["descriptions"]) == {"vie": "mô tả", "fra": "description"}


def eval_json(text):
    import json
    return json.loads(text)


def test_rerun_fetches_only_what_is_not_ok(server, tmp_path):
    _, base = server
    PhotoServer.behaviour = {uid(2): "404"}
    (tmp_path / "photos.txt").write_text(f"{uid(1)} | a | eng\n{uid(2)} | b | eng\n")
    for _ in range(2):
        photos.fetch(tmp_path / "photos.txt", tmp_path / "out", config(base), progress=False,
                     log=lambda *a: None)
    assert len(PhotoServer.requests[uid(1)]) == 1
    assert len(PhotoServer.requests[uid(2)]) == 2


def test_sigkill_in_the_middle_resumes_to_the_same_final_state(server, tmp_path):
    """The server answers 20 requests and holds the rest: the fetcher is killed
    once the manifest has rows, so it is always killed mid-way, however busy
    the machine (no sleep races the work)."""
    _, base = server
    PhotoServer.hold_after = 20
    ids = [uid(1000 + i) for i in range(120)]
    PhotoServer.behaviour = {ids[5]: "404", ids[7]: "empty", ids[9]: "png"}
    (tmp_path / "photos.txt").write_text("".join(f"{u} | p | eng\n" for u in ids))
    cmd = [sys.executable, "-m", "data_prep", "fetch", str(tmp_path / "photos.txt"),
           "--base-url", base, "--concurrency", "4", "--retries", "1", "--backoff", "0.05",
           "--quiet", "--out"]
    victim = subprocess.Popen(cmd + [str(tmp_path / "killed")], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120

    def done():
        try:                                           # the fetcher may be creating it
            rows = manifest(tmp_path / "killed").values()
        except sqlite3.OperationalError:
            return 0
        return sum(r["status"] != "pending" for r in rows)

    while done() < 5 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)                               # waits for a condition, bounded
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    PhotoServer.release.set()
    done_before = sum(r["status"] != "pending" for r in manifest(tmp_path / "killed").values())
    assert 0 < done_before < len(ids)                  # it really was killed mid-way
    subprocess.run(cmd + [str(tmp_path / "killed")], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(cmd + [str(tmp_path / "clean")], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    keys = ("status", "reason", "sha256", "file", "format", "width", "height", "bytes")
    resumed, clean = manifest(tmp_path / "killed"), manifest(tmp_path / "clean")
    assert {u: tuple(r[k] for k in keys) for u, r in resumed.items()} == \
        {u: tuple(r[k] for k in keys) for u, r in clean.items()}
    files = lambda d: sorted(p.name for p in d.iterdir() if p.is_file() and "manifest" not in p.name
                             and p.name != "summary.json")
    assert files(tmp_path / "killed") == files(tmp_path / "clean")
    assert list((tmp_path / "killed" / photos.PARTIAL).iterdir()) == []


def test_verify_finds_missing_changed_and_undecodable_files(server, tmp_path):
    _, base = server
    ids = [uid(200 + i) for i in range(4)]
    (tmp_path / "photos.txt").write_text("".join(f"{u} | p | eng\n" for u in ids))
    out = tmp_path / "out"
    photos.fetch(tmp_path / "photos.txt", out, config(base), progress=False, log=lambda *a: None)
    (out / f"{ids[0]}.jpg").unlink()
    (out / f"{ids[1]}.jpg").write_bytes(image_bytes(color=(1, 2, 3)))
    (out / f"{ids[2]}.jpg").write_bytes(b"garbage")
    problems = photos.verify(out)
    assert problems == {"file missing on disk": 1, "file changed on disk (sha256)": 2}
    m = manifest(out)
    assert [m[u]["status"] for u in ids] == ["broken", "broken", "broken", "ok"]
    photos.fetch(tmp_path / "photos.txt", out, config(base), progress=False, log=lambda *a: None)
    assert all(r["status"] == "ok" for r in manifest(out).values())
    from data_prep.__main__ import main                 # the command's exit code says it
    assert main(["verify", "--out", str(out)]) == 0
    (out / f"{ids[3]}.jpg").unlink()
    assert main(["verify", "--out", str(out)]) == 2
    photos.fetch(tmp_path / "photos.txt", out, config(base), progress=False, log=lambda *a: None)
    path, count = photos.export(out)
    rows = path.read_text(encoding="utf-8").splitlines()
    assert count == 4 and rows[0] == "uuid,file,width,height,description_eng"


def test_check_image_rejects_html_served_as_an_image():
    with pytest.raises(ValueError, match="HTML page"):
        photos.check_image(b"<html><body>oops</body></html>")
    assert photos.check_image(PNG) == ("PNG", 17, 23)


def test_a_body_over_the_cap_is_refused_not_buffered(server, tmp_path):
    """--max-bytes: by its Content-Length, or while reading a body that has none."""
    _, base = server
    PhotoServer.behaviour = {uid(1): "jpeg", uid(2): "truncated-no-length"}
    (tmp_path / "photos.txt").write_text(f"{uid(1)} | a | eng\n{uid(2)} | b | eng\n")
    photos.fetch(tmp_path / "photos.txt", tmp_path / "out", config(base, max_bytes=100),
                 progress=False, log=lambda *a: None)
    rows = manifest(tmp_path / "out")
    assert {r["status"] for r in rows.values()} == {"broken"}
    assert all(r["reason"].startswith("too large") for r in rows.values())
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == []


def test_the_command_line_hands_max_bytes_to_the_fetcher(server, tmp_path):
    from data_prep.__main__ import main
    _, base = server
    (tmp_path / "photos.txt").write_text(f"{uid(1)} | a | eng\n")
    assert main(["fetch", str(tmp_path / "photos.txt"), "--out", str(tmp_path / "out"),
                 "--base-url", base, "--max-bytes", "100", "--quiet"]) == 0
    assert manifest(tmp_path / "out")[uid(1)]["reason"].startswith("too large")


def test_ctrl_c_stops_fetch_at_once_and_keeps_what_finished(server, tmp_path):
    """Every request past the 6th is held by the server; Ctrl-C must not wait
    for them (the old pool waited for each to time out, 60 s here)."""
    _, base = server
    PhotoServer.hold_after = 6
    ids = [uid(3000 + i) for i in range(40)]
    (tmp_path / "photos.txt").write_text("".join(f"{u} | p | eng\n" for u in ids))
    cmd = [sys.executable, "-m", "data_prep", "fetch", str(tmp_path / "photos.txt"),
           "--base-url", base, "--concurrency", "4", "--timeout", "60", "--quiet",
           "--out", str(tmp_path / "out")]
    victim = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, **ctrl_c_able())
    deadline = time.monotonic() + 120
    while sum(map(len, PhotoServer.requests.values())) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)                               # waits for a condition, bounded
    victim.send_signal(signal.SIGINT)
    try:
        err = victim.communicate(timeout=30)[1]        # far below the held requests' 60 s
    finally:
        victim.kill()
        PhotoServer.release.set()
    assert victim.returncode == 130 and "interrupted" in err
    done = [r for r in manifest(tmp_path / "out").values() if r["status"] == "ok"]
    assert len(done) == 6


def fetch_behaviours(server, tmp_path, behaviour, **kw):
    _, base = server
    PhotoServer.behaviour = behaviour
    (tmp_path / "photos.txt").write_text("".join(f"{u} | p | eng\n" for u in behaviour))
    photos.fetch(tmp_path / "photos.txt", tmp_path / "out", config(base, **kw),
                 progress=False, log=lambda *a: None)
    return manifest(tmp_path / "out")


def test_refused_connections_dns_failures_and_redirect_loops_say_so(server, tmp_path,
                                                                     monkeypatch):
    """urllib3 makes a refused connection and a DNS failure kinds of timeout:
    the manifest said "timeout" for both, and "ResponseError" for a loop."""
    import socket
    m = fetch_behaviours(server, tmp_path, {uid(1): "redirect-loop"}, retries=1)
    assert (m[uid(1)]["status"], m[uid(1)]["reason"]) == ("failed", "too many redirects")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()                                   # nobody listens there now
    (tmp_path / "one.txt").write_text(f"{uid(2)} | p | eng\n")
    photos.fetch(tmp_path / "one.txt", tmp_path / "refused",
                 config(f"http://127.0.0.1:{port}/photo/", retries=0), progress=False,
                 log=lambda *a: None)
    assert manifest(tmp_path / "refused")[uid(2)]["reason"] == "connection refused"

    def no_such_host(host, *args, **kw):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    photos.fetch(tmp_path / "one.txt", tmp_path / "dns", config("http://photos.example/p/",
                                                                retries=0),
                 progress=False, log=lambda *a: None)
    assert manifest(tmp_path / "dns")[uid(2)]["reason"] == "DNS: host name not found"


def gaps(uuid):
    times = PhotoServer.requests[uuid]
    return [b - a for a, b in zip(times, times[1:])]


def test_the_timeout_runs_from_connection_to_last_byte(server, tmp_path):
    """A server that trickles a photo cannot stretch --timeout: the client
    leaves long before the last byte (the old reader waited for all of it)."""
    m = fetch_behaviours(server, tmp_path, {uid(1): "trickle"}, timeout=0.5, retries=1)
    assert m[uid(1)]["status"] == "failed" and m[uid(1)]["reason"].startswith("timeout")
    assert m[uid(1)]["attempts"] == 2 and len(PhotoServer.requests[uid(1)]) == 2
    assert PhotoServer.sent[uid(1)] < len(JPEG) // 2


def test_statuses_worth_a_retry_and_those_that_are_not(server, tmp_path):
    m = fetch_behaviours(server, tmp_path, {
        uid(1): "status-429-1", uid(2): "status-502-2", uid(3): "status-500-9",
        uid(4): "status-404-9", uid(5): "status-403-9", uid(6): "status-400-9",
        uid(7): "redirect"}, retries=2)
    assert (m[uid(1)]["status"], m[uid(1)]["attempts"]) == ("ok", 2)
    assert (m[uid(2)]["status"], m[uid(2)]["attempts"]) == ("ok", 3)
    assert (m[uid(3)]["status"], m[uid(3)]["reason"], m[uid(3)]["attempts"]) == \
        ("failed", "HTTP 500", 3)
    assert len(PhotoServer.requests[uid(3)]) == 3            # 1 + --retries, then it stops
    assert (m[uid(4)]["status"], m[uid(4)]["attempts"]) == ("missing", 1)
    for u in (uid(5), uid(6)):
        assert (m[u]["status"], m[u]["attempts"]) == ("failed", 1)
        assert len(PhotoServer.requests[u]) == 1
    assert m[uid(7)]["status"] == "ok" and m[uid(7)]["sha256"] == m[uid(1)]["sha256"]


def test_backoff_doubles_and_is_capped(server, tmp_path):
    fetch_behaviours(server, tmp_path, {uid(1): "status-503-3", uid(2): "status-503-3"},
                     retries=3, backoff=0.2, max_backoff=30.0)
    # factor × 2^(n-1): at least 0.4 and 0.8 s; measured at the server, so a
    # request's latency can take a little off a gap
    first, second, third = gaps(uid(1))
    assert second >= 0.3 and third >= 0.65
    PhotoServer.requests = {}
    (tmp_path / "out" / "manifest.sqlite").unlink()
    fetch_behaviours(server, tmp_path, {uid(3): "status-503-3"}, retries=3, backoff=50.0,
                     max_backoff=0.05)
    assert max(gaps(uid(3))) < 10                            # not 100 s or 200 s


def test_retry_after_is_honoured_capped_and_a_bad_one_is_not_fatal(server, tmp_path):
    m = fetch_behaviours(server, tmp_path, {
        uid(1): "status-503-1-1", uid(2): "status-429-1-soon", uid(3): "status-503-1-86400",
        uid(4): "bad-length"}, retries=2, backoff=0.05, max_backoff=1.5)
    assert all(r["status"] == "ok" for r in m.values()), m
    assert gaps(uid(1))[0] >= 0.8                  # Retry-After: 1 (less the latency)
    assert gaps(uid(3))[0] < 10                              # a day, capped at max_backoff
    assert m[uid(2)]["attempts"] == 2                        # "soon": the backoff instead
    assert m[uid(4)]["bytes"] == len(JPEG)                   # Content-Length: abc, body whole


def test_the_rate_limit_spaces_every_attempt(server, tmp_path):
    fetch_behaviours(server, tmp_path, {uid(n): "status-500-1" for n in range(1, 5)},
                     retries=1, backoff=0.0, max_rate=10.0, concurrency=4)
    starts = sorted(t for times in PhotoServer.requests.values() for t in times)
    assert len(starts) == 8
    assert all(b - a >= 0.05 for a, b in zip(starts, starts[1:]))   # 10/s: 0.1 s apart


def test_a_content_length_over_the_cap_is_refused_before_the_body(server, tmp_path):
    """Just over the cap: refused from the header, without waiting for a body
    the server holds back (reading it would end in a timeout instead)."""
    m = fetch_behaviours(server, tmp_path, {uid(1): "long-length"}, max_bytes=1000,
                         timeout=30.0)
    assert m[uid(1)]["status"] == "broken" and m[uid(1)]["attempts"] == 1
    assert m[uid(1)]["reason"] == "too large: 2000 bytes, larger than --max-bytes 1000"


def test_a_photos_txt_without_one_good_line_is_an_error_and_makes_nothing(tmp_path, capsys):
    from data_prep.__main__ import main
    for text in ("not a uuid | x | eng\nalso bad\n", "", "\n\n"):
        (tmp_path / "photos.txt").write_text(text)
        assert main(["fetch", str(tmp_path / "photos.txt"), "--out", str(tmp_path / "out"),
                     "--quiet"]) == 2
        assert "no line of the form" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()
