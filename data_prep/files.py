"""Writing outputs so that an interrupt leaves the old version or the new one,
never into the user's inputs or a folder a person reviewed; folder locks."""
import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic(path):
    """A temporary path beside `path` to write to; renamed over `path` when the
    block ends, removed on an error or interrupt. It keeps the suffix, for
    writers that go by it (numpy, PIL)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is not None and os.fspath(err.filename) == os.fspath(tmp):
            # The error names the file the person asked for, not our temporary one.
            raise type(err)(err.errno, err.strerror, os.fspath(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text):
    """Write beside the target, then rename over it."""
    with atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def copy_file(source, path):
    with atomic(path) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)


def write_json(path, obj):
    return write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, default=str))


def overlaps(a, b):
    """Whether one of two paths is, or lies inside, the other."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


PARTIAL_MARK = ".heobs-partial"     # in a <folder>.partial this tool made


@contextlib.contextmanager
def building(path, inputs=(), replaces=None):
    """A new output folder, built as <path>.partial and renamed into place when
    the block ends; removed on an error or interrupt. `path` must not exist
    yet or be empty (a rerun never writes into a folder a person may have
    reviewed, renamed or pruned), and it must not overlap the user's inputs
    (read-only). The .partial folder is locked while it is built (a second
    command on the same output stops at once) and marked as ours: a
    <path>.partial that is not ours and not empty is refused, never removed.

    replaces(path) -> bool: an existing `path` for which it is true (one this
    tool made, holding nothing else) is swapped out whole for the new one when
    the block ends; until then, and after an interrupt, it stays as it was."""
    path = Path(path)
    for source in inputs:
        if overlaps(path, source):
            raise ValueError(f"{path} overlaps the input {source}: write into a new folder")
    if replaces:
        _finish_swap(path, replaces)
    if not (replaces and path.is_dir() and replaces(path)):
        _check_new(path)
    partial = path.with_name(path.name + ".partial")
    if partial.exists() and (not partial.is_dir() or (any(partial.iterdir()) and
                                                      not (partial / PARTIAL_MARK).exists())):
        raise ValueError(f"{partial} exists and was not made by this tool: move it away "
                         "(it is left untouched)")
    partial.mkdir(parents=True, exist_ok=True)
    handle = os.open(partial, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{path} is being made by another command: wait for it or use "
                       "another folder") from None
        for leftover in partial.iterdir():          # an interrupted run of ours
            shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() \
                else leftover.unlink()
        (partial / PARTIAL_MARK).touch()
        try:
            yield partial
            (partial / PARTIAL_MARK).unlink()
            if replaces and path.is_dir() and replaces(path):
                # Old out of the way, new in; an interrupt between the two
                # renames is finished by the next call (_finish_swap).
                os.rename(path, _swapped(path))
                os.rename(partial, path)
                shutil.rmtree(_swapped(path))
                return
            _check_new(path)
            if path.exists():
                path.rmdir()                        # empty: checked
            os.rename(partial, path)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    finally:
        os.close(handle)


def _swapped(path):
    return path.with_name(path.name + ".replaced")


def _finish_swap(path, ours):
    """After an interrupted swap: the old folder back if the new one is not in
    place, else the old one removed; a <path>.replaced that is not one of ours
    (ours(folder) false) is refused and left alone."""
    old = _swapped(path)
    if old.exists() and not (old.is_dir() and ours(old)):
        raise ValueError(f"{old} exists and was not made by this tool: move it away (it is "
                         "left untouched)")
    if old.is_dir():
        if path.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, path)


def _check_new(path):
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} already exists and is not empty: choose a new folder "
                         "(nothing in it is overwritten)")


def unique_path(path, used):
    """`path`, or <stem>-1<suffix>, <stem>-2<suffix>, ... : the first not in
    `used` (which it joins), so that two inputs of one name never become one file."""
    path, n = Path(path), 0
    candidate = path
    while candidate in used:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    used.add(candidate)
    return candidate


class Busy(RuntimeError):
    pass


@contextlib.contextmanager
def locked(folder):
    """Hold <folder>/.lock while a command works in the folder; a second
    command on the same folder stops at once with a one-line error. The lock
    goes with the process (kill -9 included): no stale lock to remove."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise Busy(f"{folder} is in use by another command (pid {owner}); "
                   "wait for it or use another folder") from None
    try:
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield folder
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# Every figure we write says so in its PNG text: the mark that lets a rerun
# replace a figure of ours and nothing else.
FIGURE_SOFTWARE = "heobs-dec"


def is_our_figure(path):
    from PIL import Image
    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == FIGURE_SOFTWARE
    except (OSError, ValueError):
        return False


def check_output_file(path, inputs=(), ours=is_our_figure):
    """A file a person named as an output: never a folder, never over a file
    we did not make (ours(path) says which we did), never inside or over the
    command's inputs."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: name a file")
    for source in inputs:
        if overlaps(path, source):
            raise ValueError(f"{path} lies in the input {source}: write it elsewhere")
    if path.exists() and not ours(path):
        raise ValueError(f"{path} exists and was not written by this tool: name a new file "
                         "(it is left untouched)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} is not a folder: make it first")


def save_figure(fig, path, inputs=(), named=False):
    """A matplotlib figure as PNG, marked as ours, written beside and renamed
    into place. named: a path the person chose (checked as check_output_file)."""
    import matplotlib.pyplot as plt
    if named:
        check_output_file(path, inputs)
    try:
        with atomic(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png", metadata={"Software": FIGURE_SOFTWARE})
    finally:
        plt.close(fig)
    return Path(path)


def read_json(path, default=None):
    """A JSON object (dict) we wrote, or `default` when the file is missing;
    anything else is a one-line error naming the file."""
    path = Path(path)
    if default is not None and not path.exists():
        return default
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): was it edited or cut short?") \
            from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a {type(value).__name__}, not the JSON object this "
                         "tool writes")
    return value
