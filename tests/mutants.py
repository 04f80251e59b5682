"""Planted bugs: how many of them do the Caffe-free tests catch?

    python tests/mutants.py [--jobs 2] [--only SUBSTRING] [--min 90]   (make mutants)

Each mutant below is one small bug — a changed operator, constant, order or
branch — planted alone in a copy of the packages (never in this checkout).
The tests of the module it touches run on that copy; the mutant is caught
when one of them fails. Prints each survivor and the rate, and exits 1 below
--min percent. A mutant whose text is no longer in its file is reported as
stale (exit 2): fix the list when the code changes, so it keeps measuring.

The list is written against the code, not against the tests: a survivor is a
test to write, or (rarely) a change that cannot alter behaviour — those are
marked `equivalent=True` with the reason and not counted.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("data_prep", "dec", "tests", "caffe_models", "docker", "pyproject.toml", "Makefile",
        "README.md", "requirements.txt", "requirements.in")

# The tests that cover each file (the fast ones: no Caffe, no browser unless the page).
TESTS = {
    **{f"data_prep/photos/{m}.py": ["tests/data_prep/test_photos.py",
                                    "tests/data_prep/test_photos_listing.py",
                                    "tests/data_prep/test_photos_manifest.py",
                                    "tests/data_prep/test_reliability.py"]
       for m in ("listing", "manifest", "download", "fetch")},
    "data_prep/features.py": ["tests/data_prep/test_features.py"],
    "data_prep/labels.py": ["tests/data_prep/test_labels.py", "tests/data_prep/test_safety.py",
                            "tests/data_prep/test_reliability.py"],
    "data_prep/image_datasets.py": ["tests/data_prep/test_labels.py",
                                    "tests/data_prep/test_safety.py",
                                    "tests/data_prep/test_reliability.py",
                                    "tests/data_prep/test_outputs.py"],
    "data_prep/checks.py": ["tests/data_prep/test_safety.py", "tests/dec/test_review.py",
                            "tests/dec/test_cli.py"],
    "data_prep/files.py": ["tests/data_prep/test_safety.py", "tests/data_prep/test_reliability.py",
                           "tests/data_prep/test_outputs.py"],
    "data_prep/sizes.py": ["tests/data_prep/test_labels.py", "tests/data_prep/test_safety.py"],
    "data_prep/db.py": ["tests/data_prep/test_db.py", "tests/data_prep/test_reliability.py"],
    "data_prep/datasets.py": ["tests/data_prep/test_db.py", "tests/data_prep/test_safety.py",
                              "tests/data_prep/test_mnist5k.py", "tests/data_prep/test_mnist.py"],
    "data_prep/images.py": ["tests/data_prep/test_reliability.py", "tests/data_prep/test_safety.py",
                            "tests/data_prep/test_features.py"],
    "dec/multi_t.py": ["tests/dec/test_metrics.py"],
    "dec/metrics.py": ["tests/dec/test_metrics.py"],
    "dec/review/store.py": ["tests/dec/test_review.py"],
    "dec/review/session.py": ["tests/dec/test_review.py"],
    "dec/review/sources.py": ["tests/dec/test_review.py"],
    "dec/review/__init__.py": ["tests/dec/test_review.py"],
    "dec/review/app.py": ["tests/dec/test_review.py"],
    "dec/review/static/review.js": ["tests/dec/test_review.py", "tests/dec/test_review_browser.py"],
    "dec/caffenet/train.py": ["tests/dec/test_caffenet.py"],
    "dec/caffenet/nets.py": ["tests/dec/test_caffenet.py", "tests/dec/test_nets_text.py"],
    "docker/gpu_check.py": ["tests/docker/test_gpu_bundle.py"],
    "dec/experiments.py": ["tests/dec/test_experiments.py", "tests/data_prep/test_mnist.py"],
    "dec/sweep.py": ["tests/dec/test_experiments.py"],
    "dec/nets.py": ["tests/dec/test_nets_text.py", "tests/dec/test_cli.py"],
    "dec/cluster.py": ["tests/dec/test_nets_text.py"],
    "dec/pipeline.py": ["tests/dec/test_cli.py"],
    "dec/compare.py": ["tests/dec/test_experiments.py", "tests/dec/test_cli.py"],
    "dec/__main__.py": ["tests/dec/test_cli.py"],
    "data_prep/__main__.py": ["tests/data_prep/test_safety.py", "tests/data_prep/test_outputs.py"],
    "dec/review/thumbs.py": ["tests/dec/test_review.py"],
}
# Every module of the packages has tests above and mutants below, or says here
# why not: `make mutants` stops (exit 2) on a module in neither.
NOT_MUTATED = {
    **{m: "docstring only" for m in ("data_prep/__init__.py", "dec/__init__.py",
                                     "data_prep/bench/__init__.py",
                                     "dec/caffenet/__init__.py", "dec/bench/__init__.py",
                                     "data_prep/photos/__init__.py")},
    **{m: "a benchmark (make bench-*): measured, not a product path" for m in (
        "dec/bench/caffenet.py", "dec/bench/dec.py", "dec/bench/layer.py",
        "dec/bench/ptdec_peer.py", "dec/bench/review.py", "dec/bench/torch_reference.py",
        "data_prep/bench/features.py", "data_prep/bench/fetch.py")},
    **{m: "its tests need Caffe (minutes a mutant): not yet in this fast run" for m in (
        "dec/autoencoder.py", "dec/solve.py", "dec/engine.py", "dec/demo.py", "dec/export.py",
        "dec/caffenet/classify.py", "data_prep/feature_data.py", "data_prep/caffe_tools.py",
        "data_prep/datum.py", "data_prep/photos/manifest.py", "data_prep/photos/fetch.py",
        "docker/gpu_bundle_files.py")},
}
MODULE_ROOTS = ("data_prep", "dec", "docker")


def unlisted(mutants):
    """Modules with neither tests and a mutant nor a reason in NOT_MUTATED."""
    mutated = {m.file for m in mutants}
    modules = sorted(str(p.relative_to(REPO)) for root in MODULE_ROOTS
                     for p in (REPO / root).rglob("*.py"))
    return [m for m in modules if m not in NOT_MUTATED and not (m in TESTS and m in mutated)]


@dataclass
class Mutant:
    file: str
    old: str
    new: str
    what: str
    equivalent: bool = False       # cannot change behaviour: reported, not counted


M = Mutant
MUTANTS = [
    # ---- fetch: statuses, retries, backoff, Retry-After, rate, size, deadline ----------
    M("data_prep/photos/download.py", "RETRY_STATUSES = frozenset({429, *range(500, 600)})",
      "RETRY_STATUSES = frozenset({*range(500, 600)})", "429 not retried"),
    M("data_prep/photos/download.py", "RETRY_STATUSES = frozenset({429, *range(500, 600)})",
      "RETRY_STATUSES = frozenset({429, *range(501, 600)})", "500 not retried"),
    M("data_prep/photos/download.py", "return FetchRetry(total=config.retries,",
      "return FetchRetry(total=config.retries + 1,", "one retry too many"),
    M("data_prep/photos/download.py", "backoff_factor=config.backoff,", "backoff_factor=0,",
      "no backoff"),
    M("data_prep/photos/download.py", "backoff_max=config.max_backoff, backoff_jitter",
      "backoff_max=120, backoff_jitter", "backoff not capped by --max-backoff"),
    M("data_prep/photos/download.py", "retry_after_max=config.max_backoff,", "retry_after_max=21600,",
      "Retry-After not capped"),
    M("data_prep/photos/download.py", "            return None\n\n\ndef retry_policy",
      "            raise\n\n\ndef retry_policy", "a bad Retry-After is fatal"),
    M("data_prep/photos/download.py", "        delay = retry.get_backoff_time() if delay is None else delay",
      "        delay = retry.get_backoff_time()", "Retry-After ignored"),
    M("data_prep/photos/download.py", "            stop.wait(delay)", "            stop.wait(0)",
      "no wait between attempts"),
    M("data_prep/photos/download.py", "retries=ONE_ATTEMPT,", "retries=retry,",
      "urllib3 retries inside an attempt (rate limit and count bypassed)"),
    M("data_prep/photos/download.py", "            elif response.status >= 400:",
      "            elif response.status >= 500:", "a 4xx answer read as a photo"),
    M("data_prep/photos/download.py", '"missing" if response.status in (404, 410) else "failed"',
      '"missing" if response.status in (404,) else "failed"', "410 not missing"),
    M("data_prep/photos/download.py", "            chunk = response.read1(65536)",
      "            chunk = response.read(65536)", "a trickled body stretches the timeout"),
    M("data_prep/photos/download.py", "        if left <= 0:\n", "        if left <= -1e9:\n",
      "no deadline check between reads"),
    M("data_prep/photos/download.py", "    if length.isdigit() and int(length) > config.max_bytes:",
      "    if length.isdigit() and int(length) > 100 * config.max_bytes:",
      "Content-Length over --max-bytes not refused up front"),
    M("data_prep/photos/download.py", "        if total > config.max_bytes:",
      "        if total > 100 * config.max_bytes:", "a body without length not capped"),
    M("data_prep/photos/download.py", "            self.next = start + self.interval",
      "            self.next = now + self.interval", "rate limiter forgets queued starts"),
    M("data_prep/photos/download.py", "        if start > now:\n            time.sleep(start - now)",
      "        if start > now + 1:\n            time.sleep(start - now)", "rate limiter never waits"),
    M("data_prep/photos/download.py",
      "            image.load()  # decode every pixel: verify() alone misses truncation",
      "            pass", "a truncated image accepted"),
    M("data_prep/photos/download.py", 'if head.startswith((b"<!doctype", b"<html",',
      'if head.startswith((b"<!doctype",', "HTML served as image/jpeg accepted"),
    M("data_prep/photos/download.py", '        if content_type.startswith("text/") and body:',
      "        if False:", "text/html answers not named"),
    M("data_prep/photos/download.py", 'name = f"{outcome.uuid}.{EXTENSIONS.get(fmt, fmt.lower())}"',
      'name = f"{outcome.uuid}.jpg"', "every photo saved as .jpg"),
    M("data_prep/photos/listing.py", "            uuid = parts[0].strip().lower()",
      "            uuid = parts[0].strip()", "upper-case uuids not merged"),
    M("data_prep/photos/listing.py", "listing.photos.setdefault(uuid, {}).setdefault(lang, description)",
      "listing.photos.setdefault(uuid, {})[lang] = description",
      "a repeated language keeps the last description"),
    M("data_prep/photos/listing.py", '            if not lang or " " in lang:',
      "            if not lang:", "a language with a blank accepted"),
    # ---- HOG, colour map, DEC's feature vector ----------------------------------------
    M("data_prep/features.py", "        wins = v[..., c] > best", "        wins = v[..., c] >= best",
      "channel ties go to the later channel"),
    M("data_prep/features.py", "    orientation = np.argmax(dots, axis=2)",
      "    orientation = 8 - np.argmax(dots[..., ::-1], axis=2)",
      "orientation ties go to the last"),
    M("data_prep/features.py", "    magnitude = np.sqrt(best)", "    magnitude = best",
      "squared magnitude"),
    M("data_prep/features.py", "    xp = (xs + 0.5) / sbin - 0.5", "    xp = xs / sbin - 0.5",
      "bilinear x position off by half a pixel"),
    M("data_prep/features.py",
      "hist = np.bincount(index.ravel(), weights=weight.ravel(), minlength=9 * cells + 1)",
      "hist = np.bincount(index.transpose(1, 0, 2).ravel(), "
      "weights=weight.transpose(1, 0, 2).ravel(), minlength=9 * cells + 1)",
      "histogram summed y-major (another order of the same sums)"),
    M("data_prep/features.py", "    for o in range(9):\n        norm += hist[o] * hist[o]",
      "    for o in reversed(range(9)):\n        norm += hist[o] * hist[o]",
      "energies summed in reverse orientation order"),
    M("data_prep/features.py",
      "block = norm[:-1, :-1] + norm[:-1, 1:] + norm[1:, :-1] + norm[1:, 1:] + EPS",
      "block = norm[1:, 1:] + norm[1:, :-1] + norm[:-1, 1:] + norm[:-1, :-1] + EPS",
      "block energy summed in another order"),
    M("data_prep/features.py", "feat[..., o] = 0.5 * (h[0] + h[1] + h[2] + h[3])",
      "feat[..., o] = 0.5 * (h[3] + h[2] + h[1] + h[0])", "the 4 normalisations in another order"),
    M("data_prep/features.py",
      "(block[1:, 1:], block[1:, :-1], block[:-1, 1:], block[:-1, :-1])",
      "(block[1:, 1:], block[:-1, 1:], block[1:, :-1], block[:-1, :-1])",
      "texture features 10 and 11 swapped"),
    M("data_prep/features.py", "EPS = 0.0001", "EPS = 0.001", "normaliser epsilon"),
    M("data_prep/features.py", "TRUNCATE = 0.2\n", "TRUNCATE = 0.25\n", "truncation"),
    M("data_prep/features.py", "TEXTURE_WEIGHT = 0.2357", "TEXTURE_WEIGHT = 0.25",
      "texture weight"),
    M("data_prep/features.py", "    return feat.transpose(1, 0, 2)", "    return feat",
      "x-major output"),
    M("data_prep/features.py", "cv2.COLOR_RGB2YCrCb", "cv2.COLOR_BGR2YCrCb",
      "colour map reads RGB as BGR"),
    M("data_prep/features.py", "interpolation=cv2.INTER_LINEAR", "interpolation=cv2.INTER_AREA",
      "colour map resized by area, not DEC's linear"),
    M("data_prep/features.py", "    return ycrcb[..., 1:]", "    return ycrcb[..., :2]",
      "Y and Cr instead of Cr and Cb"),
    M("data_prep/features.py", "HOG_SHIFT, HOG_SCALE = 0.2, 10.0", "HOG_SHIFT, HOG_SCALE = 0.0, 10.0",
      "HOG not shifted"),
    M("data_prep/features.py", "COLOUR_SHIFT, COLOUR_SCALE = 128.0, 10.0",
      "COLOUR_SHIFT, COLOUR_SCALE = 128.0, 1.0", "colour not scaled"),
    # ---- DEC's maths (MultiTLoss reference), metrics -----------------------------------
    M("dec/multi_t.py", "    w = 1.0 / (1.0 + d / alpha)", "    w = 1.0 / (1.0 + d)",
      "alpha left out of the kernel"),
    M("dec/multi_t.py", "w ** ((alpha + 1.0) / 2.0)", "w ** alpha",
      "exponent alpha (equal at alpha 1)"),
    M("dec/multi_t.py", "q = np.sqrt(np.prod(s, axis=0)) * w", "q = np.prod(s, axis=0) * w",
      "variance factor without the square root"),
    M("dec/multi_t.py", "    weight = q ** 2 / q.sum(axis=0)",
      "    weight = q ** 2 / q.sum(axis=1, keepdims=True)", "target normalised by rows"),
    M("dec/multi_t.py", "p.shape[0])", "p.size)", "loss averaged over every entry"),
    M("dec/multi_t.py", "    mask = (alpha + 1.0) / alpha * w * (p - q)",
      "    mask = 2.0 * w * (p - q)", "gradient factor of alpha 1 only"),
    M("dec/multi_t.py", "    dmu = -weighted.sum(axis=0) / m", "    dmu = weighted.sum(axis=0) / m",
      "centre gradient sign"),
    M("dec/multi_t.py", "                    - (p - q).sum(axis=0)[None, :] / s)",
      "                    + (p - q).sum(axis=0)[None, :] / s)", "variance gradient sign"),
    M("dec/metrics.py", "    known = y_true >= 0", "    known = y_true > 0",
      "class 0 counted as no class"),
    M("dec/metrics.py", "linear_sum_assignment(-square)", "linear_sum_assignment(square)",
      "worst matching"),
    M("dec/metrics.py", 'y_true, y_pred,\n                                                      '
      'average_method="geometric"', 'y_true, y_pred,\n                                       '
      '               average_method="arithmetic"', "NMI not DEC's"),
    M("dec/metrics.py", "np.add.at(counts, (y_true, y_pred), 1)",
      "np.add.at(counts, (y_pred % n_true, y_true % n_pred), 1)", "confusion transposed"),
    # ---- data sets, databases ---------------------------------------------------------
    M("data_prep/db.py", 'KEY_FORMAT = "{:08}"', 'KEY_FORMAT = "{:06}"', "keys not DEC's"),
    M("data_prep/db.py", "datum.channels, datum.height, datum.width = x.size, 1, 1",
      "datum.channels, datum.height, datum.width = 1, 1, x.size", "float datum not (D,1,1)"),
    M("data_prep/db.py", "    except (plyvel.Error, DecodeError) as err:",
      "    except plyvel.Error as err:", "a record that is no Datum is a traceback"),
    M("data_prep/datasets.py", "    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:",
      "    if len(raw) < 4:", "any file read as IDX"),
    M("data_prep/datasets.py", "labels=image_set.labels[index], n_train=n * 4 // 5)",
      "labels=image_set.labels[np.sort(index)], n_train=n * 4 // 5)",
      "subset labels out of step with images"),
    # ---- labels, splits, sizes, names, folders ----------------------------------------
    M("data_prep/labels.py", "    low = CLASS_ALIASES.get(name.lower(), name.lower())",
      "    low = CLASS_ALIASES.get(name, name.lower())", "'Beings' not read as being"),
    M("data_prep/labels.py", 'encoding="utf-8-sig") as f:\n            reader = csv.DictReader(f)',
      'encoding="utf-8") as f:\n            reader = csv.DictReader(f)', "Excel's BOM refused"),
    M("data_prep/labels.py", "os.path.join(os.path.dirname(os.path.abspath(csv_path)), text)",
      "os.path.join(os.getcwd(), text)", "relative paths against the working folder"),
    M("data_prep/labels.py", 'class_name(r["label"] or "")', 'class_name(r["label"])',
      "a row without a label is class 'None'"),
    M("data_prep/labels.py", 'prefix = class_name(Path(filename).name.split("_")[0])',
      'prefix = class_name(Path(filename).stem)', "file-name prefix not cut at '_'"),
    M("data_prep/image_datasets.py", "            identity = (stat.st_dev, stat.st_ino)",
      "            identity = real", "a hard link is a second image"),
    M("data_prep/image_datasets.py", "        n_val = int(round(ratios[1] * len(members)))",
      "        n_val = int(ratios[1] * len(members))", "validation share rounded down"),
    M("data_prep/image_datasets.py", "    if not shuffle:\n        return parts",
      "    if True:\n        return parts", "splits never shuffled"),
    M("data_prep/image_datasets.py",
      "    return [(p, label if label == positive else REST) for p, label in items]",
      "    return [(p, label) for p, label in items]", "one-vs-rest keeps every class"),
    M("data_prep/image_datasets.py", "    out_dir = Path(out_dir).absolute()",
      "    out_dir = Path(out_dir)", "a relative folder reaches Caffe's tools as given"),
    M("data_prep/sizes.py",
      "    return low[0] <= size[0] <= high[0] and low[1] <= size[1] <= high[1]",
      "    return low[0] <= size[0] <= high[0] and low[1] <= size[1] < high[1]",
      "window's upper height excluded"),
    M("data_prep/checks.py", 'NAME = re.compile(r"^[^/\\\\\\x00-\\x1f\\"]+$")',
      'NAME = re.compile(r"^[^/\\x00-\\x1f\\"]+$")', "a backslash in a name accepted"),
    M("data_prep/checks.py", 'or name.startswith(".") or', "or", "a leading dot accepted"),
    M("data_prep/checks.py", 'positive_int = _number(int, 0, False,', 'positive_int = _number(int, 0, True,',
      "0 accepted as a positive number"),
    M("data_prep/checks.py", "        if not low <= value <= high:", "        if not low <= value:",
      "a port over 65535 accepted"),
    M("data_prep/files.py", "            shutil.rmtree(partial, ignore_errors=True)\n            raise",
      "            raise", "a failed build leaves its .partial"),
    M("data_prep/files.py", "(any(partial.iterdir()) and\n"
      "                                                      not (partial / PARTIAL_MARK).exists()))",
      "False)", "a foreign .partial is emptied"),
    M("data_prep/files.py", "            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
      "        except BlockingIOError:\n            raise Busy(f\"{path} is being made",
      "            pass\n        except BlockingIOError:\n            raise Busy(f\"{path} is being made",
      "two builds of one folder at once"),
    # ---- the review page ----------------------------------------------------------------
    M("dec/review/store.py", "            if row is None or row[0] != sha256_of(path):",
      "            if row is None:", "an edited export is overwritten"),
    M("dec/review/store.py", "    if app_id != APPLICATION_ID and not earlier:", "    if False:",
      "any SQLite file taken as a store"),
    M("dec/review/store.py", "WHERE source = ? AND undone = 0", "WHERE source = ?",
      "undo takes back the same batch again"),
    M("dec/review/store.py", "                if before:\n", "                if False:\n",
      "undoing a rename forgets the one before"),
    M("dec/review/sources.py",
      "            if real == given or real.startswith(given.rstrip(os.sep) + os.sep):",
      "            if real == given:", "an output inside the photo folder"),
    M("dec/review/session.py",
      "ids = [i for i in dict.fromkeys(self.check_id(i) for i in ids) if self.codes[i] < 0]",
      "ids = [i for i in dict.fromkeys(self.check_id(i) for i in ids)]",
      "accepting a page overwrites reviewed images"),
    M("dec/review/session.py", "        self.sync()                       # another server",
      "        pass  # ", "an item's label stale across servers"),
    M("dec/review/__init__.py", "    if not labels.exists() and export.exists():",
      "    if False:", "a new store overwrites an existing file"),
    M("dec/review/app.py", '    app.config["TRUSTED_HOSTS"] = trusted_hosts(host, allowed_hosts)',
      "    pass", "any Host answered (DNS rebinding)"),
    M("dec/review/app.py", "script-src 'self';", "script-src 'self' 'unsafe-inline';",
      "inline script allowed"),
    M("dec/review/static/review.js", '  $("counts").replaceChildren(...counts);',
      '  $("counts").innerHTML = Object.entries(summary.counts).map(([c, n]) => '
      '`<span>${c} <b>${n}</b></span>`).join("");', "counts built as HTML"),
    M("dec/review/static/review.js", '              badge(it.label), el("figcaption", {}, `${it.name}${conf}`));',
      '              badge(it.label), el("figcaption", {}, `${it.name}`));',
      "the grid leaves out the model's confidence"),
    # ---- CaffeNet helpers without Caffe -------------------------------------------------
    M("dec/caffenet/train.py", "    for state in states[:-keep]:", "    for state in states[:-keep - 1]:",
      "one snapshot too many kept"),
    M("dec/caffenet/train.py", '    newest = lambda rows: sorted({r["iteration"]: r for r in rows}.values(),',
      '    newest = lambda rows: sorted(rows,', "a resumed log repeats iterations"),
    M("dec/caffenet/train.py", "if n_val % b == 0)", "if n_val % b == 0 or b == largest)",
      "a validation batch that does not divide the set"),
    # ---- CaffeNet's recipes: the net and solver text -------------------------------------
    M("dec/caffenet/nets.py", "        weights, bias = 'type: \"msra\"', 0",
      "        weights = 'type: \"msra\"'", "msra keeps BVLC's biases of 1"),
    M("dec/caffenet/nets.py", "    new_lr = (solver.new_layer_lr, 2 * solver.new_layer_lr)",
      "    new_lr = (10, 20)", "the last layer's lr ignores the recipe"),
    M("dec/caffenet/nets.py", "    if scale == 1:\n", "    if scale:\n", "inputs never scaled"),
    M("dec/caffenet/nets.py", ' if solver.clip_gradients else [])', ' if False else [])',
      "clip_gradients never written"),
    # ---- the GPU check's verdict and what a bundle leaves out ----------------------------
    M("docker/gpu_check.py", "    if worst > rtol:", "    if worst > 10 * rtol:",
      "CPU and GPU losses far apart pass"),
    M("docker/gpu_check.py", "    if not cpu or set(cpu) != set(gpu):", "    if not cpu:",
      "a GPU run that stopped early passes"),
    M("docker/gpu_check.py", "(cublas|cublasLt|curand|cudart|cuda|nvblas)",
      "(cublas|cublasLt|curand|cuda|nvblas)", "cudart carried though the machine has it"),
    M("docker/gpu_check.py", "            elif m := LDD_VERSION.search(line):",
      "            elif False:", "a missing glibc symbol version goes unseen"),
    # ---- #25: the check's own verdicts and bounds ------------------------------------------
    M("docker/gpu_check.py", 'GTEST_CASES = {"cpu": {"0", "1"}, "gpu": {"2", "3"}}',
      'GTEST_CASES = {"cpu": {"0", "1"}, "gpu": {"0", "1"}}', "CPU cases pass for the GPU"),
    M("docker/gpu_check.py", "    ok = (code == 0 and passed is not None and int(passed[1]) > 0 and not failed",
      "    ok = (code == 0 and passed is not None and int(passed[1]) > 0",
      "a FAILED line with exit 0 passes"),
    M("docker/gpu_check.py", '        return float("nan")\n', "        return 0.0\n",
      "a loss spelled NaN reads as 0"),
    M("docker/gpu_check.py", "        if not (value > 0 and value != float(\"inf\"))",
      "        if not (value != float(\"inf\"))", "--rtol 0 or negative accepted"),
    # ---- the registry, its record and the README table ----------------------------------------
    M("dec/experiments.py", '"minutes": round(results["timings"]["total_s"] / 60, 1)',
      '"minutes": round(results["timings"]["total_s"] / 100, 1)', "minutes misreckoned"),
    M("dec/experiments.py", '"rounds": results["rounds"], "converged": results["converged"],',
      '"rounds": results["rounds"], "converged": True,', "converged always recorded"),
    M("dec/experiments.py", '"commit": made_at or results.get("commit") or commit(),',
      '"commit": commit(),', "the commit the run started at is lost"),
    M("dec/experiments.py", "f\"{ours['rounds']} rounds{'' if ours['converged'] else ', not converged'})\"",
      "f\"{ours['rounds']} rounds)\"", "not converged left out of the README"),
    M("dec/experiments.py", "    top = max(summary, key=lambda r: r[\"acc\"])",
      "    top = summary[-1]", "the sweep's best is not the best"),
    M("dec/experiments.py", '    flag = {"mnist": "--mnist-dir", "stl": "--stl-dir", "photos": "--photos"}.get(e.data)',
      '    flag = {"stl": "--stl-dir", "photos": "--photos"}.get(e.data)', "reproduce mnist ignores --input"),
    M("dec/experiments.py", '"mnist", PAPER_LAMBDAS, (1234,)', '"mnist", PAPER_LAMBDAS[1:], (1234,)',
      "the sweep leaves out λ = 10"),
    M("dec/sweep.py", '            entry[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan',
      '            entry[f"{key}_sd"] = float(values.std(ddof=0)) if len(values) > 1 else math.nan',
      "population sd for a sample of seeds"),
    M("dec/sweep.py", "sched.override(update_interval=lam, seed=seed)",
      "sched.override(update_interval=lam)", "every seed runs the same seed"),
    M("dec/sweep.py", "experiment=sweep.name, class_folders=False)",
      "experiment=sweep.name, class_folders=True)", "a sweep writes 70 000 images a run"),
    M("dec/sweep.py", '        first = next(csv.DictReader(f))', '        first = list(csv.DictReader(f))[-1]',
      "AE + k-means read from the last round"),
    M("dec/sweep.py", '        mark += " (dec.py\'s)" if r["lambda"] == sweep.marked else ""',
      '        mark += ""', "dec.py's λ not marked"),
    M("dec/sweep.py", "PAPER_LAMBDAS = tuple(10 * 2 ** i for i in range(9))",
      "PAPER_LAMBDAS = tuple(10 * 2 ** i for i in range(8))", "the paper's λ = 2560 left out"),
    # ---- nets: the text each setting writes ------------------------------------------------
    M("dec/nets.py", "num_center: {n_clusters} alpha: {sched.alpha} lambda", "num_center: {n_clusters} "
      "alpha: 1 lambda", "the net's alpha is not the schedule's"),
    M("dec/cluster.py", "q, _ = multi_t.soft_assignment(features, centres, alpha=self.sched.alpha)",
      "q, _ = multi_t.soft_assignment(features, centres)", "Python assigns at alpha 1"),
    M("dec/caffenet/nets.py", 'f"weight_decay: {solver.weight_decay}", f"snapshot: {solver.snapshot}",',
      'f"weight_decay: {solver.weight_decay}", f"snapshot: {solver.test_interval}",',
      "snapshot written from test_interval (equal defaults)"),
    M("dec/caffenet/nets.py", 'f"random_seed: {solver.seed}"]', 'f"random_seed: 1234"]',
      "the seed is fixed"),
    # ---- stages and rounds --------------------------------------------------------------------
    M("dec/pipeline.py", "        if not finished[stage]:", "        if False:",
      "an unfinished stage binds the next command's options"),
    M("dec/pipeline.py", "            if made_by_it:\n", "            if False:\n",
      "an unfinished stage is redone without a word"),
    # ---- files: the output rule and the swap -------------------------------------------------
    M("data_prep/files.py", "    if path.exists() and not ours(path):", "    if False:",
      "a named figure replaces a file not ours"),
    M("data_prep/files.py", '            return image.format == "PNG" and image.info.get("Software") == FIGURE_SOFTWARE',
      '            return image.format == "PNG"', "any PNG counts as ours"),
    M("data_prep/files.py", "    if not (replaces and path.is_dir() and replaces(path)):\n        _check_new(path)",
      "    _check_new(path)", "a dataset cannot be prepared again"),
    M("data_prep/files.py", "            raise type(err)(err.errno, err.strerror, os.fspath(path)) from None",
      "            raise", "errors name our temporary file"),
    M("data_prep/image_datasets.py", "        entry.name in PREPARED for entry in folder.iterdir())",
      "        True for entry in folder.iterdir())", "a person's notes in a dataset are swapped away"),
    M("data_prep/image_datasets.py",
      "    inputs = {Path(p).resolve().parent for p, _ in items} | {Path(p).resolve() for p in inputs}",
      "    inputs = {Path(p).resolve() for p in inputs}", "prepare writes among the photos"),
    # ---- ranges and messages -------------------------------------------------------------------
    M("data_prep/checks.py", "CAFFE_INT_MAX = 2 ** 31 - 1", "CAFFE_INT_MAX = 2 ** 32 - 1",
      "iterations past int32 reach Caffe"),
    M("data_prep/checks.py", "    if value >= 1:\n", "    if value > 1:\n",
      "--corrupt 1 drops every input"),
    M("data_prep/checks.py", "IMAGE_SIDE_MAX = 4096", "IMAGE_SIDE_MAX = 10 ** 6",
      "unbounded image sizes"),
    M("data_prep/datasets.py", "    if md5 and hashlib.md5(raw).hexdigest() != md5:",
      "    if False:", "MNIST's content is not checked"),
    M("data_prep/datasets.py", '        gzipped = f.read(2) == b"\\x1f\\x8b"',
      '        gzipped = path.suffix == ".gz"', "a gzip is known by its name only"),
    M("data_prep/datasets.py", "    order = np.random.RandomState(seed).permutation(len(raw))\n    images = raw[order, :-1]",
      "    order = np.random.RandomState(seed + 1).permutation(len(raw))\n    images = raw[order, :-1]",
      "mnist5k in another permutation"),
    M("data_prep/datasets.py", "    images = raw[order, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)",
      "    images = raw[order, :-1].astype(np.uint8).reshape(-1, 28, 28, 1).transpose(0, 2, 1, 3)",
      "mnist5k's digits transposed"),
    M("data_prep/photos/download.py", '            return "connection refused"', '            return "timeout"',
      "a refused connection recorded as a timeout"),
    M("data_prep/photos/download.py", "    if isinstance(err, errors.NameResolutionError):",
      "    if False:", "a DNS failure recorded as something else"),
    M("dec/review/app.py", "        names = set(LOOPBACK) | machine_names()", "        names = {host}",
      "--host 0.0.0.0 answers no browser"),
    M("dec/review/sources.py", '    if any((path / marker).exists() for marker in ("stages.json", "dec/state.json")):',
      "    if False:", "an unfinished run's figures offered as photos"),
    M("dec/review/store.py", "    if Path(path).is_file() and Path(path).stat().st_size == 0:",
      "    if False:", "an empty file called foreign SQLite"),
    M("data_prep/images.py", '    return "\\n" not in name and "\\r" not in name',
      "    return True", "a file name with a line break is listed"),
    M("dec/review/thumbs.py", "THUMB_SIDE = 192", "THUMB_SIDE = 64", "thumbnails of another size"),
    M("dec/compare.py", '             + ("" if recipe == "paper" else " (NOT DEC\'s schedule)"), "",',
      '             , "",', "a non-faithful run's comparison does not say so"),
    M("dec/__main__.py", '    g.add_argument("--pretrain-iter", type=caffe_count,',
      '    g.add_argument("--pretrain-iter", type=int,', "iterations unchecked"),
    M("data_prep/__main__.py", '    if a.png:                 # before the survey: a refused name costs no time\n'
      '        check_output_file(a.png, folders)\n', "",
      "survey --png unchecked before the survey"),
]


def copy_repo(dest):
    for name in COPY:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", ".pytest_cache"))
        elif source.exists():
            shutil.copy2(source, dest / name)


def run_tests(copy, files, timeout):
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-m", "not caffe", "-p", "no:cacheprovider",
         *files], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout[-2000:] + result.stderr[-2000:]


def try_mutant(copy, mutant, timeout=120):
    """(status, detail): caught, survived, stale."""
    path = copy / mutant.file
    text = path.read_text()
    if text.count(mutant.old) != 1:
        return "stale", f"{text.count(mutant.old)} matches of its text"
    files = TESTS.get(mutant.file)
    if not files:
        return "stale", f"no tests listed for {mutant.file} in TESTS"
    path.write_text(text.replace(mutant.old, mutant.new))
    try:
        code, output = run_tests(copy, files, timeout)
    except subprocess.TimeoutExpired:         # e.g. an uncapped wait: the tests did not pass
        return "timeout", ""
    finally:
        path.write_text(text)
    if code == 0:
        return "survived", ""
    if code == 1:
        return "caught", ""
    return "error", output            # collection error etc.: caught, but say so


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--only", help="mutants whose file or text contains this")
    parser.add_argument("--min", type=float, default=90.0, help="percent caught to pass (90)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a mutant's tests "
                        "may take (a hang, e.g. an uncapped wait, counts as caught)")
    args = parser.parse_args(argv)
    missing = unlisted(MUTANTS)
    if missing:
        print("modules with neither tests and a mutant here nor a reason in NOT_MUTATED:\n  "
              + "\n  ".join(missing))
        return 2
    chosen = [m for m in MUTANTS if not args.only or args.only in m.file or args.only in m.what]
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="heobs-mutants-") as tmp:
        copies = []
        for n in range(args.jobs):
            copy = Path(tmp) / f"copy{n}"
            copy.mkdir()
            copy_repo(copy)
            copies.append(copy)
        check = subprocess.run([sys.executable, "-c", "import dec, data_prep; print(dec.__file__)"],
                               cwd=copies[0], env=dict(os.environ, PYTHONPATH=str(copies[0])),
                               capture_output=True, text=True)
        if not check.stdout.startswith(str(copies[0])):
            sys.exit(f"mutants: the copy's packages are not the ones imported ({check.stdout!r})")
        free = list(copies)
        results = {}

        def job(index):
            copy = free.pop()
            try:
                results[index] = try_mutant(copy, chosen[index], args.timeout)
            finally:
                free.append(copy)
            status, _ = results[index]
            print(f"[{len(results):3d}/{len(chosen)}] {status:8s} {chosen[index].file}: "
                  f"{chosen[index].what}", flush=True)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(job, range(len(chosen))))
    counted = [(m, results[i]) for i, m in enumerate(chosen) if not m.equivalent]
    caught = sum(status in ("caught", "error", "timeout") for _, (status, _) in counted)
    hung = [m for m, (status, _) in counted if status == "timeout"]
    stale = [(m, d) for m, (status, d) in counted if status == "stale"]
    survived = [m for m, (status, _) in counted if status == "survived"]
    total = len(counted) - len(stale)
    rate = 100.0 * caught / total if total else 0.0
    print()
    for m in survived:
        print(f"survived: {m.file}: {m.what}")
    for m in hung:
        print(f"timeout:  {m.file}: {m.what} (counted as caught; on a busy machine, rerun "
              "with --only to be sure)")
    for m, detail in stale:
        print(f"stale:    {m.file}: {m.what} ({detail})")
    print(f"\n{caught} of {total} planted bugs caught: {rate:.1f}% "
          f"(need {args.min:g}%; {time.monotonic() - start:.0f} s)")
    if stale:
        return 2
    return 0 if rate >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
