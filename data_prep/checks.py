"""Checks on what a user hands in: option values (at parse time) and names
from data (class names, data-set names) before they touch a path or a
prototxt. Each failure is one line naming the value."""
import argparse
import math
import re
import sys

NAME = re.compile(r"^[^/\\\x00-\x1f\"]+$")


def check_name(name, what="name"):
    """A name that becomes one path component (a class folder, a data set):
    no separators, no '.'/'..', no leading dot, no control characters or
    quotes (they would end a prototxt string)."""
    name = str(name)
    if not name.strip() or not NAME.match(name) or name.startswith(".") or name != name.strip():
        raise ValueError(f"invalid {what} {name!r}: use letters, digits, '-', '_' "
                         "(no path separators, quotes or leading dot)")
    return name


def prototxt_path(path):
    """A path written into a prototxt string: no quote, backslash or newline."""
    text = str(path)
    if any(c in text for c in '"\\\n\r'):
        raise ValueError(f"path {text!r} has a quote, backslash or newline, which a "
                         "prototxt cannot hold: rename or move it")
    return text


def _number(kind, low, inclusive, label):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if (kind is float and not math.isfinite(value)) or value < low or \
                (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} must be {label}")
        return value
    return parse


def int_range(low, high):
    """A whole number from low to high, both included (a port, a page size)."""
    def parse(text):
        value = nonneg_int(text) if low >= 0 else int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} must be {low} to {high}")
        return value
    return parse


positive_int = _number(int, 0, False, "a whole number above 0")
nonneg_int = _number(int, 0, True, "a whole number, 0 or more")
positive_float = _number(float, 0.0, False, "a number above 0")
nonneg_float = _number(float, 0.0, True, "a number, 0 or more")

# The ranges of values that reach Caffe or size an allocation, one definition each.
CAFFE_INT_MAX = 2 ** 31 - 1        # Caffe's solver and layer fields are int32
caffe_count = int_range(1, CAFFE_INT_MAX)          # iterations, sizes, batches
caffe_count0 = int_range(0, CAFFE_INT_MAX)         # 0 allowed: snapshots, burn-in
seed_value = int_range(0, 2 ** 32 - 1)                 # Caffe's and NumPy/k-means' seeds
IMAGE_SIDE_MAX = 4096              # photos resized or drawn: bounded memory and time
image_side = int_range(1, IMAGE_SIDE_MAX)


def dropout_ratio(text):
    """Caffe's Dropout: a ratio from 0 up to, not including, 1 (1 drops every input)."""
    value = nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text} must be from 0 up to (not including) 1")
    return value


def split_ratios(text):
    """'80/10/10', '0.7/0.1/0.2': three parts above 0, as fractions adding up to 1."""
    try:
        parts = [float(v) for v in text.split("/")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a/b/c") from None
    if len(parts) != 3 or not all(math.isfinite(v) and v > 0 for v in parts):
        raise argparse.ArgumentTypeError(f"{text}: three parts above 0, train/val/test")
    total = sum(parts)
    if not (abs(total - 1) < 1e-6 or abs(total - 100) < 1e-4):
        raise argparse.ArgumentTypeError(f"{text}: the parts add up to {total:g}, not 1 or 100")
    return tuple(v / total for v in parts)


def path_problem(err):
    """For "[Errno 17] File exists" / "Not a directory" raised while making a
    folder: which part of the path is a file (None if that is not the cause)."""
    import os
    from pathlib import Path
    if not isinstance(err, (FileExistsError, NotADirectoryError)) or err.filename is None:
        return None
    path = Path(os.fsdecode(err.filename))
    for part in [path, *path.parents]:
        if part.exists():
            return (f"{part} is a file, not a folder: {path} cannot be made there"
                    if not part.is_dir() else None)
    return None


def run_command(make_parser, argv=None):
    """Build the parser (make_parser(): its imports too), parse and run a command
    line whose subcommands set `handler`: a bad value ends in argparse's one
    line (exit 2), bad input in `error: ...` (exit 2), Ctrl-C at any point in
    one line (exit 130)."""
    try:
        try:
            args = make_parser().parse_args(argv)
        except SystemExit as exit:
            return exit.code
        args.handler(args)
    except (OSError, ValueError, RuntimeError) as err:   # CaffeMissing, Diverged, Busy too
        print(f"error: {path_problem(err) or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was finished is kept; the same command resumes",
              file=sys.stderr)
        return 130
    return 0
