"""The review page (report §3.1.7, §4.1.1, §8): a local web app to label,
accept and correct DEC clusters, CaffeNet predictions, a labels CSV or a
plain photo folder by keyboard, every decision stored at once in SQLite.

    python -m dec review SOURCE --labels review.sqlite
    python -m dec export-labels review.sqlite --out labels.csv
"""
from pathlib import Path


def open_review(source, labels, classes=None):
    """The Review of a source path and a store path (one-line errors for bad ones)."""
    from .session import Review
    from .sources import open_source
    from .store import Store
    source = open_source(source)           # first: a bad source creates no store
    return Review(source, Store(labels), classes)


def export_path(session, labels, export=None):
    """Where the page's export button writes: `export`, else <store>.labels.csv
    beside the store (not "labels.csv": that may be the CSV under review).
    Never the source under review."""
    path = Path(export) if export else Path(labels).with_name(Path(labels).stem + ".labels.csv")
    if path.resolve() == Path(session.source.path).resolve():
        raise ValueError(f"{path} is the source under review: export somewhere else (--export)")
    return path
