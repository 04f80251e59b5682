"""Writing files so that an interrupt leaves the old version or the new one."""
import json
import os
from pathlib import Path


def write_text(path, text):
    """Write beside the target, then rename over it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path, obj):
    return write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, default=str))
