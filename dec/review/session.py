"""One review: a source, the classes to sort into and the decision store.

Everything a page asks for is answered from memory: the items' order per
group is sorted once, and each item's current label is a small integer kept
in step with the store (our own writes at once; another server's when the
store's data_version moves). That keeps page turns and counts fast at
100 000 images.
"""
import os
import threading
from pathlib import Path

import numpy as np

from data_prep.checks import check_name
from data_prep.labels import PHOTO_CLASSES, class_name

from . import thumbs
from .sources import descriptions
from .store import UNSURE

ORDERS = ("desc", "asc")       # most sure first, least sure first


def review_classes(source, classes=None):
    """The classes to sort into: given, else the source's, else the report's."""
    classes = [class_name(c) for c in (classes or source.classes or PHOTO_CLASSES)]
    for c in classes:
        check_name(c, "class name")
    if len(set(classes)) != len(classes) or UNSURE in classes:
        raise ValueError(f"classes {classes}: each once, and not {UNSURE!r} "
                         "(the x key's mark)")
    return classes


class Review:
    export_path = None

    def __init__(self, source, store, classes=None):
        self.source, self.store = source, store
        self.classes = review_classes(source, classes)
        self.labels = self.classes + [UNSURE]       # codes 0..K; K + 1: a label of another set
        self.code_of = {name: i for i, name in enumerate(self.labels)}
        self.key = str(Path(source.path).resolve())  # the store's name for this source
        self.index = {f: i for i, f in enumerate(source.files)}
        self.codes = np.full(len(source), -1, np.int16)
        self.other_labels = {}                        # item → a label outside self.labels
        self.lock = threading.RLock()
        self._version = None
        self._orders = {}
        self._descriptions = None
        self.sync()

    # ---- keeping in step with the store ------------------------------------------------
    def sync(self):
        version = self.store.version()
        if version == self._version:
            return
        with self.lock:
            self.codes[:] = -1
            self.other_labels = {}
            for item, label in self.store.labels().items():
                i = self.index.get(item)
                if i is not None:
                    self._set(i, label)
            self._version = version

    def _set(self, i, label):
        if label is None:
            self.codes[i] = -1
        elif label in self.code_of:
            self.codes[i] = self.code_of[label]
        else:
            self.codes[i] = len(self.labels)
            self.other_labels[i] = label

    def label_of(self, i):
        code = int(self.codes[i])
        return None if code < 0 else self.other_labels.get(i) if code == len(self.labels) \
            else self.labels[code]

    # ---- what the page shows -----------------------------------------------------------
    def check_group(self, group):
        if not 0 <= group < len(self.source.groups):
            raise ValueError(f"no group {group}")
        return group

    def order(self, group, order="desc"):
        if order not in ORDERS:
            raise ValueError(f"order is one of {', '.join(ORDERS)}")
        key = (self.check_group(group), order)
        if key not in self._orders:
            members = np.flatnonzero(self.source.group_of == group)
            confidence = self.source.confidence[members]
            if np.isnan(confidence).all():        # no model: by file name
                ranked = members[np.argsort([self.source.files[i] for i in members],
                                            kind="stable")]
            else:
                ranked = members[np.argsort(-confidence, kind="stable")]
            self._orders[key] = ranked if order == "desc" else ranked[::-1]
        return self._orders[key]

    def page(self, group, order="desc", page=0, size=60):
        self.sync()
        ranked = self.order(group, order)
        pages = max(1, -(-len(ranked) // size))
        page = min(max(page, 0), pages - 1)
        ids = ranked[page * size:(page + 1) * size]
        return {"group": group, "order": order, "page": page, "pages": pages, "size": size,
                "items": [self.brief(int(i)) for i in ids]}

    def brief(self, i):
        c = self.source.confidence[i]
        return {"id": i, "name": os.path.basename(self.source.files[i]),
                "confidence": None if np.isnan(c) else round(float(c), 4),
                "label": self.label_of(i)}

    def summary(self):
        self.sync()
        with self.lock:
            reviewed = self.codes >= 0
            counts = np.bincount(self.codes[reviewed], minlength=len(self.labels) + 1)
            per_group = np.bincount(self.source.group_of[reviewed],
                                    minlength=len(self.source.groups))
        sizes = np.bincount(self.source.group_of, minlength=len(self.source.groups))
        names = self.store.group_names(self.key)
        return {"reviewed": int(reviewed.sum()), "total": len(self.source),
                "counts": {name: int(n) for name, n in zip(self.labels, counts)}
                | ({"other labels": int(counts[-1])} if counts[-1] else {}),
                "groups": [{"index": g, "name": name, "class": names.get(name),
                            "size": int(sizes[g]), "reviewed": int(per_group[g])}
                           for g, name in enumerate(self.source.groups)]}

    def item(self, i):
        self.check_id(i)
        self.sync()                       # another server may have labelled it
        info = self.brief(i) | {"group": self.source.groups[self.source.group_of[i]],
                                "file": self.source.files[i]}
        real = self.source.allowed(i)
        if real and os.path.exists(real):
            info["bytes"] = os.path.getsize(real)
            try:
                info["width"], info["height"] = thumbs.image_size(real)
            except Exception:             # shown as unreadable, the page goes on
                info["unreadable"] = True
        else:
            info["missing"] = True
        if self.source.scores is not None:
            info["scores"] = {name: round(float(v), 4)
                              for name, v in zip(self.source.score_names, self.source.scores[i])}
        if self.source.photo_dir is not None:
            if self._descriptions is None:
                self._descriptions = descriptions(self.source.photo_dir)
            info["descriptions"] = self._descriptions.get(info["name"], {})
        return info

    # ---- decisions ---------------------------------------------------------------------
    def check_id(self, i):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(self.source):
            raise ValueError(f"no item {i!r}")
        return i

    def check_label(self, label):
        if label not in self.code_of:
            raise ValueError(f"label {label!r} is not one of {', '.join(self.labels)}")
        return label

    def _decide(self, ids, label, action):
        items = [(self.source.files[i], self.source.groups[self.source.group_of[i]]) for i in ids]
        with self.lock:
            batch = self.store.decide(items, label, self.key, action) if items else None
            for i in ids:
                self._set(i, label)
        return {"batch": batch, "changed": {int(i): label for i in ids}}

    def label(self, ids, label):
        """The person's label for these items (x: UNSURE)."""
        ids = list(dict.fromkeys(self.check_id(i) for i in ids))
        return self._decide(ids, self.check_label(label), "label")

    def accept(self, ids, label):
        """A page accepted as one class: only the items not reviewed yet."""
        self.sync()
        ids = [i for i in dict.fromkeys(self.check_id(i) for i in ids) if self.codes[i] < 0]
        return self._decide(ids, self.check_label(label), "accept")

    def rename(self, group, label):
        """A DEC cluster named as a class (report §8.3): the name kept, and its
        items not reviewed yet labelled, in one undoable step."""
        self.sync()
        label = self.check_label(label)
        if label == UNSURE:
            raise ValueError("a cluster is named as a class, not as unsure")
        members = self.order(group)
        ids = [int(i) for i in members if self.codes[i] < 0]
        items = [(self.source.files[i], self.source.groups[group]) for i in ids]
        with self.lock:
            batch = self.store.rename(self.key, self.source.groups[group], label, items)
            for i in ids:
                self._set(i, label)
        return {"batch": batch, "changed": {i: label for i in ids}}

    def undo(self):
        """The newest action on this source taken back."""
        with self.lock:
            items = self.store.undo(self.key)
            now = self.store.labels_of(items)
            changed = {}
            for item in items:
                i = self.index.get(item)
                if i is not None:
                    self._set(i, now.get(item))
                    changed[i] = now.get(item)
        return {"changed": changed}

    def export(self, path=None):
        path = path or self.export_path
        self.source.check_output(path, "the export")
        return self.store.export(path)
