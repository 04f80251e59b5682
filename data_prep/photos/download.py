"""One photo: the HTTP request with urllib3's retry policy, a deadline to the
last byte, the checks that keep only whole images, the atomic write."""
import hashlib
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import urllib3
from PIL import Image

DEFAULT_BASE_URL = "https://cdn.heobs.org/photo/"
SIZES = ("thumbnail", "small", "medium", "large")  # the CDN's ?size= (heobs client code)
PARTIAL = ".partial"
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp",
              "TIFF": "tif", "MPO": "jpg"}


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
    """A transport error in a few words, for the manifest's reason. urllib3
    makes a refused connection and a DNS failure kinds of ConnectTimeoutError:
    they are told apart before a timeout."""
    errors = urllib3.exceptions
    if isinstance(err, errors.NameResolutionError):
        return "DNS: host name not found"
    if isinstance(err, errors.NewConnectionError):
        cause = err.__cause__ or err.__context__
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(err).lower():
            return "connection refused"
        if not isinstance(cause, (TimeoutError, errors.TimeoutError)) and \
                "timed out" not in str(err).lower():
            return f"connection failed: {cause or err}".split("\n")[0]
    if isinstance(err, (errors.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(err, (errors.MaxRetryError, errors.ResponseError)):
        return "too many redirects" if "redirect" in str(err) else f"{err}".split("\n")[0]
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


