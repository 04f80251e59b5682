"""heobs.org photos: photos.txt → deduplicated, concurrent, resumable download.

Report §2: photos.txt has one line per photo *and language*
(`<uuid> | <description> | <lang>`); each photo is at
https://cdn.heobs.org/photo/<uuid>. Here: parse robustly, keep every
description, deduplicate before any request, download concurrently with
retries, keep only files that decode completely, and record everything in a
SQLite manifest next to the images — the single source of truth for later
steps and for resuming after any interrupt (kill -9 included).

One module a concern: `listing` (photos.txt), `manifest` (the SQLite
manifest, and the one read-only opener its readers use), `download` (one
photo: HTTP, retries, checks), `fetch` (the whole step, verify, export).
"""
from .download import (DEFAULT_BASE_URL, EXTENSIONS, PARTIAL, SIZES, FetchConfig, Outcome,
                       RateLimiter, check_image, fetch_one)
from .fetch import export, fetch, format_summary, verify
from .listing import Listing, parse_photos
from .manifest import MANIFEST, add_listing, open_manifest, open_readonly, record, rows

__all__ = ["DEFAULT_BASE_URL", "EXTENSIONS", "PARTIAL", "SIZES", "FetchConfig", "Outcome",
           "RateLimiter", "check_image", "fetch_one", "export", "fetch", "format_summary",
           "verify", "Listing", "parse_photos", "MANIFEST", "add_listing", "open_manifest",
           "open_readonly", "record", "rows"]
