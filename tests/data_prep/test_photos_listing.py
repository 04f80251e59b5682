"""photos.txt parsing (data_prep.photos.listing)."""
from data_prep import photos
from tests.data_prep.test_photos import uid


def test_parse_keeps_languages_and_reports_malformed_lines(tmp_path):
    text = (f"\ufeff{uid(1)} | Những người ăn xin | vie\r\n"
            f"{uid(1)} | Mendiants | fra\r\n"
            "\r\n"
            f"  {uid(2)}|Pagode | Chùa Một Cột | temple|vie  \n"
            "not a line\n"
            f"zz{uid(3)[2:]} | bad id | fra\n"
            f"{uid(3).upper()} | upper-case id is fine | eng\n"
            f"{uid(4)} | no language |\n")
    (tmp_path / "photos.txt").write_text(text, encoding="utf-8", newline="")
    listing = photos.parse_photos(tmp_path / "photos.txt")
    assert listing.photos[uid(1)] == {"vie": "Những người ăn xin", "fra": "Mendiants"}
    assert listing.photos[uid(2)] == {"vie": "Pagode | Chùa Một Cột | temple"}
    assert uid(3) in listing.photos and uid(4) not in listing.photos
    assert listing.stats() == {"lines": 7, "unique_ids": 3, "malformed": 3, "blank": 1}
    assert [(n, r.split()[0]) for n, r, _ in listing.malformed] == \
        [(5, "expected"), (6, "invalid"), (8, "invalid")]




def test_a_repeated_language_keeps_the_first_description_and_a_blank_language_is_refused(
        tmp_path):
    (tmp_path / "photos.txt").write_text(f"{uid(1)} | first | fra\n{uid(1)} | second | fra\n"
                                         f"{uid(2)} | x | en gb\n", encoding="utf-8")
    listing = photos.parse_photos(tmp_path / "photos.txt")
    assert listing.photos == {uid(1): {"fra": "first"}}
    assert listing.malformed[0][:2] == (3, "invalid language 'en gb'")
