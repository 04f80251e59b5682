"""The review page (report §3.1.7, §4.1.1, §8): a local web app to label,
accept and correct DEC clusters, CaffeNet predictions, a labels CSV or a
plain photo folder by keyboard, every decision stored at once in SQLite.

    python -m dec review SOURCE --labels review.sqlite
    python -m dec export-labels review.sqlite --out labels.csv
"""
from pathlib import Path


def open_review(source, labels, classes=None, export=None):
    """The Review of a source path and a store path, with the export path it
    writes to (`export`, else <store>.labels.csv). Everything is checked before
    anything is made: a refused command creates no store and no file."""
    from .session import Review, review_classes
    from .sources import open_source
    from .store import Store, refuse_export
    source = open_source(source)
    given_export = export is not None
    classes = review_classes(source, classes)
    labels = Path(labels)
    # --labels first: a default export beside it would be refused for its reason.
    if not labels.exists():
        source.check_output(labels, "--labels")
    export = Path(export) if export else labels.with_name(labels.stem + ".labels.csv")
    source.check_output(export, "--export" if given_export else
                        "the export (beside --labels by default; --export names another)")
    if not labels.exists() and export.exists():    # a new store has written no export yet
        refuse_export(export)
    store = Store(labels)
    try:
        store.check_export(export)
        review = Review(source, store, classes)
    except BaseException:
        store.close()
        raise
    review.export_path = export
    return review
