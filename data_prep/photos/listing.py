"""photos.txt: one line per photo and language, `uuid | description | lang`."""
import re
from dataclasses import dataclass, field

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class Listing:
    photos: dict = field(default_factory=dict)   # uuid → {lang: description}, file order
    lines: int = 0                               # non-blank lines read
    blank: int = 0
    malformed: list = field(default_factory=list)  # (line number, reason, text)

    def stats(self):
        return {"lines": self.lines, "unique_ids": len(self.photos),
                "malformed": len(self.malformed), "blank": self.blank}


def parse_photos(path):
    """Read photos.txt. The uuid is before the first '|', the language after
    the last; everything between is the description (it may hold '|')."""
    listing = Listing()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:                     # one bad byte spoils its line, not the file
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError as err:
                listing.lines += 1
                listing.malformed.append((number, f"not UTF-8 ({err.reason} at byte "
                                                  f"{err.start})", raw.decode("utf-8", "replace")))
                continue
            if not line:
                listing.blank += 1
                continue
            listing.lines += 1
            parts = line.split("|")
            if len(parts) < 3:
                listing.malformed.append((number, "expected 'uuid | description | lang'", line))
                continue
            uuid = parts[0].strip().lower()
            lang = parts[-1].strip()
            description = "|".join(parts[1:-1]).strip()
            if not UUID_RE.match(uuid):
                listing.malformed.append((number, f"invalid uuid {parts[0].strip()!r}", line))
                continue
            if not lang or " " in lang:
                listing.malformed.append((number, f"invalid language {lang!r}", line))
                continue
            listing.photos.setdefault(uuid, {}).setdefault(lang, description)
    return listing


