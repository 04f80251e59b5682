"""The fetch manifest (data_prep.photos.manifest): its readers never write."""
import sqlite3

import pytest

from data_prep import images, photos
from tests.data_prep.test_photos import JPEG, uid


def test_readers_open_the_manifest_read_only(tmp_path):
    con = photos.open_manifest(tmp_path)
    with con:
        con.execute("INSERT INTO photos (uuid, descriptions, status, file, first_seen, updated) "
                    "VALUES (?, '{}', 'ok', ?, 0, 0)", (uid(1), f"{uid(1)}.jpg"))
        con.execute("INSERT INTO photos (uuid, descriptions, status, first_seen, updated) "
                    "VALUES (?, '{}', 'broken', 0, 0)", (uid(2),))
    con.close()
    (tmp_path / f"{uid(1)}.jpg").write_bytes(JPEG)
    before = (tmp_path / photos.MANIFEST).read_bytes()
    reader = photos.open_readonly(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("DELETE FROM photos")
    reader.close()
    assert images.list_photos(tmp_path) == [tmp_path / f"{uid(1)}.jpg"]   # the ok ones only
    assert (tmp_path / photos.MANIFEST).read_bytes() == before
    with pytest.raises(FileNotFoundError):
        photos.open_readonly(tmp_path / "elsewhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / photos.MANIFEST).write_bytes(b"not sqlite" * 100)
    with pytest.raises(ValueError, match="not a fetch manifest"):
        photos.open_readonly(tmp_path / "bad")
