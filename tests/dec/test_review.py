"""The review page's sources, store and web API (Flask's test client); no Caffe.
The browser test is test_review_browser.py."""
import csv
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_prep.labels import read_labels
from dec.review import open_review, sources, thumbs
from dec.review.app import create_app
from dec.review.session import Review
from dec.review.store import UNSURE, Store
from tests.helpers import ctrl_c_able, make_dec_run, make_images

CLASSES = ["heritage", "being", "scenery", "other"]


@pytest.fixture
def run_dir(tmp_path):
    return make_dec_run(tmp_path / "run")


@pytest.fixture
def client(run_dir, tmp_path):
    review = open_review(run_dir, tmp_path / "review.sqlite")
    app = create_app(review, tmp_path / "labels.csv", tmp_path / "thumbs")
    return app.test_client()


def page_ids(client, group=0, order="desc", page=0, size=60):
    data = client.get(f"/api/page?group={group}&order={order}&page={page}&size={size}").json
    return [item["id"] for item in data["items"]], data


# ---- sources ----------------------------------------------------------------------------
def test_a_dec_run_is_grouped_by_cluster_and_ordered_by_q(run_dir, client):
    source = sources.open_source(run_dir)
    assert source.kind == "dec-run" and source.groups == ["cluster 0", "cluster 1", "cluster 2"]
    assert source.scores.shape == (36, 3) and all(Path(f).exists() for f in source.files)
    ids, data = page_ids(client, group=1)
    q = np.load(run_dir / "q.npy")
    assert sorted(ids) == [i for i in range(36) if i % 3 == 1]
    confidence = [item["confidence"] for item in data["items"]]
    assert confidence == sorted(confidence, reverse=True)
    assert confidence[0] == pytest.approx(q[ids[0], 1], abs=1e-4)
    assert page_ids(client, group=1, order="asc")[0] == ids[::-1]
    info = client.get(f"/api/item/{ids[0]}").json
    assert info["width"] == 64 and info["height"] == 48 and set(info["scores"]) == set(source.groups)


def test_a_classify_output_a_labels_csv_and_a_photo_folder(tmp_path):
    photos = make_images(tmp_path / "photos", per_class=4)
    out = tmp_path / "classified"
    out.mkdir()
    with open(out / "predictions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "predicted", "p_heritage", "p_Beings", "p_scenery"])
        for i, path in enumerate(photos):
            p = np.roll([0.7, 0.2, 0.1], i % 3)
            writer.writerow([path, ["heritage", "Beings", "scenery"][int(np.argmax(p))], *p])
    (out / "classify.json").write_text(json.dumps({"source": str(tmp_path / "photos")}))
    classified = sources.open_source(out)
    assert classified.kind == "classify" and classified.groups == ["heritage", "being", "scenery"]
    assert classified.classes == ["heritage", "being", "scenery"]
    assert np.allclose(classified.confidence, 0.7) and classified.scores.shape == (12, 3)
    assert sources.open_source(out / "predictions.csv").files == classified.files

    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{p},{'Beings' if i % 2 else 'other'}\n"
                                               for i, p in enumerate(photos)))
    listed = sources.open_source(labels)
    assert listed.kind == "labels" and listed.groups == ["being", "other"]
    assert listed.classes == ["being", "other"] and np.isnan(listed.confidence).all()

    folder = sources.open_source(tmp_path / "photos")
    assert folder.kind == "photos" and len(folder) == 12 and folder.groups == ["photos"]
    review = Review(folder, Store(tmp_path / "s.sqlite"))
    assert review.classes == CLASSES                   # the report's four by default
    names = [item["name"] for item in review.page(0)["items"]]
    assert names == sorted(names)                      # no scores: by file name


def written(path, content):
    if content is None:
        path.mkdir()
    elif content:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("name, content, message", [
    ("nothing", b"", "does not exist"),
    ("empty", None, "no images"),
    ("x.csv", b"a,b\n1,2\n", "not a labels CSV"),
    ("y.csv", b"\xff\xfe\x00bad", "not a UTF-8"),
])
def test_a_bad_source_is_one_line_and_creates_no_store(tmp_path, name, content, message):
    source = written(tmp_path / name, content)
    result = subprocess.run([sys.executable, "-m", "dec", "review", str(source),
                             "--labels", str(tmp_path / "store.sqlite")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "store.sqlite").exists()


def test_a_store_that_is_not_sqlite_is_refused(tmp_path, run_dir):
    (tmp_path / "notes.txt").write_text("my notes, not a database" * 100)
    with pytest.raises(ValueError, match="not a review store"):
        open_review(run_dir, tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text().startswith("my notes")


def test_classes_must_be_usable_names(run_dir, tmp_path):
    with pytest.raises(ValueError, match="class name"):
        open_review(run_dir, tmp_path / "s.sqlite", ["ok", "../up"])
    with pytest.raises(ValueError, match="each once"):
        open_review(run_dir, tmp_path / "s.sqlite", ["a", UNSURE])


# ---- decisions --------------------------------------------------------------------------
def test_label_accept_undo_and_export(client, tmp_path):
    ids, _ = page_ids(client, group=0, size=5)
    assert client.post("/api/label", json={"ids": [ids[0]], "label": "scenery"}).status_code == 200
    client.post("/api/label", json={"ids": [ids[1]], "label": UNSURE})
    accepted = client.post("/api/accept", json={"ids": ids, "label": "heritage"}).json
    assert sorted(map(int, accepted["changed"])) == sorted(ids[2:])     # reviewed ones kept
    assert accepted["summary"]["counts"]["heritage"] == 3
    assert accepted["summary"]["reviewed"] == 5
    assert accepted["summary"]["groups"][0]["reviewed"] == 5

    undone = client.post("/api/undo", json={}).json
    assert sorted(map(int, undone["changed"])) == sorted(ids[2:])
    assert undone["summary"]["reviewed"] == 2

    client.post("/api/label", json={"ids": [ids[0]], "label": "being"})   # a correction
    client.post("/api/undo", json={})                                     # back to scenery
    assert [item["label"] for item in page_ids(client, group=0, size=5)[1]["items"]][:2] == \
        ["scenery", UNSURE]

    exported = client.post("/api/export", json={}).json
    assert exported["rows"] == 1                           # unsure is not a class
    rows = read_labels(tmp_path / "labels.csv")
    assert rows == [(Path(sources.open_source(tmp_path / "run").files[ids[0]]), "scenery")]


def test_renaming_a_cluster_labels_what_is_not_reviewed_in_one_undoable_step(client):
    ids, _ = page_ids(client, group=2)
    client.post("/api/label", json={"ids": [ids[0]], "label": "other"})
    named = client.post("/api/rename", json={"group": 2, "label": "being"}).json
    assert named["summary"]["groups"][2] == {"index": 2, "name": "cluster 2", "class": "being",
                                             "size": 12, "reviewed": 12}
    assert named["summary"]["counts"]["being"] == 11 and named["summary"]["counts"]["other"] == 1
    undone = client.post("/api/undo", json={}).json
    assert undone["summary"]["groups"][2]["class"] is None
    assert undone["summary"]["reviewed"] == 1


@pytest.mark.parametrize("url, body", [
    ("/api/label", {"ids": [0], "label": "castle"}),
    ("/api/label", {"ids": [36], "label": "being"}),
    ("/api/label", {"ids": [True], "label": "being"}),
    ("/api/label", {"ids": "0", "label": "being"}),
    ("/api/accept", None),
    ("/api/rename", {"group": 7, "label": "being"}),
    ("/api/rename", {"group": 0, "label": UNSURE}),
])
def test_bad_requests_are_refused_and_store_nothing(client, url, body):
    response = client.post(url, json=body) if body is not None else client.post(url, data="x")
    assert response.status_code == 400 and response.json["error"]
    assert client.get("/api/summary").json["reviewed"] == 0


def test_two_servers_on_one_store_see_each_other(run_dir, tmp_path):
    first = open_review(run_dir, tmp_path / "s.sqlite")
    second = open_review(run_dir, tmp_path / "s.sqlite")
    first.label([3], "heritage")
    assert second.summary()["counts"]["heritage"] == 1
    second.label([3], "scenery")
    assert {i["id"]: i["label"] for i in first.page(0)["items"]}[3] == "scenery"
    assert second.undo()["changed"] == {3: "heritage"}       # back to the first's decision
    assert first.summary()["counts"] == second.summary()["counts"]


KILLED_WRITER = """
import os, signal, sys
from dec.review import open_review
review = open_review(sys.argv[1], sys.argv[2])
for i in range(20):
    review.label([i], "heritage" if i % 2 else "scenery")
    if i == 11:
        os.kill(os.getpid(), signal.SIGKILL)      # a crash in the middle of a review
"""


def test_a_killed_server_loses_no_stored_decision(run_dir, tmp_path):
    store = tmp_path / "s.sqlite"
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(run_dir), str(store)],
                            cwd=Path(__file__).parents[2], timeout=120)
    assert result.returncode == -signal.SIGKILL
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT COUNT(*) FROM labels").fetchone() == (12,)
    con.close()
    review = open_review(run_dir, store)
    assert review.summary()["reviewed"] == 12
    assert [d[0] for d in review.store.con.execute(
        "SELECT DISTINCT source FROM decisions")] == [str(run_dir.resolve())]


# ---- files ------------------------------------------------------------------------------
def test_only_files_under_the_source_are_served(tmp_path):
    photos = tmp_path / "photos"
    make_images(photos, per_class=2)
    secret = tmp_path / "secret.jpg"
    (photos / "heritage_000.jpg").rename(secret)
    (photos / "heritage_000.jpg").symlink_to(secret)           # a link out of the folder
    review = open_review(photos, tmp_path / "s.sqlite")
    client = create_app(review, tmp_path / "l.csv", tmp_path / "thumbs").test_client()
    linked = review.source.files.index(str(photos / "heritage_000.jpg"))
    assert client.get(f"/image/{linked}").status_code == 404
    assert client.get(f"/thumb/{linked}").status_code == 404
    other = 1 - linked if linked == 0 else 0
    assert client.get(f"/image/{other}").status_code == 200
    for url in ("/image/../../secret.jpg", "/image/%2e%2e%2fsecret.jpg", "/thumb/-1",
                "/thumb/999", "/static/../review/app.py", "/static/..%2fapp.py"):
        assert client.get(url).status_code == 404, url


def test_thumbnails_are_made_once_and_cached(client, tmp_path, monkeypatch):
    made = []
    real = thumbs._small
    monkeypatch.setattr(thumbs, "_small", lambda *a: made.append(1) or real(*a))
    first = client.get("/thumb/4")
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    assert client.get("/thumb/4").data == first.data
    assert len(made) == 1 and len(list((tmp_path / "thumbs").rglob("*.jpg"))) == 1


def test_a_16_bit_photo_is_shown_as_a_jpeg(tmp_path):
    from PIL import Image
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((40, 60), 40000, np.uint16)).save(photos / "deep.png")
    review = open_review(photos, tmp_path / "s.sqlite")
    client = create_app(review, tmp_path / "l.csv", tmp_path / "thumbs").test_client()
    big = client.get("/image/0")
    assert big.mimetype == "image/jpeg"
    import io
    grey = np.asarray(Image.open(io.BytesIO(big.data)))
    assert 140 < grey.mean() < 170                         # 40000/65535 of white, not clipped


def test_export_labels_command_writes_what_prepare_reads(client, run_dir, tmp_path):
    client.post("/api/rename", json={"group": 0, "label": "heritage"})
    out = tmp_path / "out" / "labels.csv"
    out.parent.mkdir()
    result = subprocess.run([sys.executable, "-m", "dec", "export-labels",
                             str(tmp_path / "review.sqlite"), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    items = read_labels(out)
    assert len(items) == 12 and {label for _, label in items} == {"heritage"}
    assert all(path.exists() for path, _ in items)
    missing = subprocess.run([sys.executable, "-m", "dec", "export-labels",
                              str(tmp_path / "nope.sqlite"), "--out", str(out)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no review store" in missing.stderr
    assert not (tmp_path / "nope.sqlite").exists()


def test_the_command_serves_on_localhost_and_stops_on_ctrl_c(run_dir, tmp_path):
    import urllib.request
    server = subprocess.Popen([sys.executable, "-m", "dec", "review", str(run_dir), "--labels",
                               str(tmp_path / "s.sqlite"), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              **ctrl_c_able())
    try:
        lines = [server.stdout.readline(), server.stdout.readline()]
        assert "36 images in 3 groups" in lines[0]
        url = lines[1].split()[2]
        assert url.startswith("http://127.0.0.1:")
        state = json.loads(urllib.request.urlopen(url + "api/state", timeout=60).read())
        assert state["summary"]["total"] == 36 and state["classes"] == CLASSES
        assert b"review.js" in urllib.request.urlopen(url, timeout=60).read()
        urllib.request.urlopen(urllib.request.Request(
            url + "api/label", json.dumps({"ids": [5], "label": "other"}).encode(),
            {"Content-Type": "application/json"}), timeout=60)
        server.send_signal(signal.SIGINT)                 # Ctrl-C: the way to stop it
        assert server.wait(timeout=60) == 0
        assert "stopped: 1 of 36 reviewed" in server.stdout.read()
        assert server.stderr.read() == ""
    finally:
        server.kill()
        server.wait()


def test_a_fetch_folder_shows_each_photos_descriptions(tmp_path):
    from data_prep import photos
    folder = tmp_path / "fetched"
    files = make_images(folder, per_class=1)
    con = photos.open_manifest(folder)
    with con:
        for n, path in enumerate(files):
            con.execute("INSERT INTO photos (uuid, descriptions, status, file, first_seen, "
                        "updated) VALUES (?, ?, 'ok', ?, 0, 0)",
                        (f"u{n}", json.dumps({"fr": f"église {n}", "en": f"church {n}"}),
                         path.name))
    con.close()
    review = open_review(folder, tmp_path / "s.sqlite")
    info = review.item(review.source.files.index(str(files[2])))
    assert info["descriptions"] == {"fr": "église 2", "en": "church 2"}
    plain = tmp_path / "plain"
    make_images(plain, per_class=1)
    assert "descriptions" not in open_review(plain, tmp_path / "t.sqlite").item(0)


def test_the_export_never_writes_over_the_source_or_the_store(tmp_path):
    photos = make_images(tmp_path / "photos", per_class=2)
    listed = tmp_path / "labels.csv"
    listed.write_text("path,label\n" + "".join(f"{p},other\n" for p in photos))
    review = open_review(listed, tmp_path / "review.sqlite")
    assert review.export_path == tmp_path / "review.labels.csv"
    with pytest.raises(ValueError, match="the review reads"):
        open_review(listed, tmp_path / "review.sqlite", export=listed)
    review.label([0], "other")
    with pytest.raises(ValueError, match="review store itself"):
        review.export(tmp_path / "review.sqlite")
    assert review.store.labels() == {review.source.files[0]: "other"}
    result = subprocess.run([sys.executable, "-m", "dec", "review", str(listed), "--labels",
                             str(tmp_path / "review.sqlite"), "--export", str(listed)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "the review reads" in result.stderr
    assert listed.read_text().count("other") == 6          # the CSV as it was


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_outputs_never_land_in_a_folder_the_source_reads(tmp_path, run_dir):
    photos = tmp_path / "photos"
    make_images(photos, per_class=2)
    before, run_before = snapshot(photos), snapshot(run_dir)
    for source, target in ((photos, photos / "heritage_000.jpg"), (photos, photos / "new.csv"),
                           (run_dir, run_dir / "predictions.csv"),
                           (run_dir, run_dir / "classes_toy" / "0" / "0.jpg")):
        with pytest.raises(ValueError, match="the review reads"):
            open_review(source, tmp_path / "s.sqlite", export=target)
        with pytest.raises(ValueError, match="the review reads"):     # a new store there too
            open_review(source, target.with_name("review.sqlite"))
    assert snapshot(photos) == before and snapshot(run_dir) == run_before
    assert not (tmp_path / "s.sqlite").exists()          # refused: nothing made
    assert sources.open_source(run_dir).kind == "dec-run"


def test_an_export_replaces_only_its_own_unchanged_file(tmp_path, run_dir):
    mine = tmp_path / "notes.csv"
    mine.write_text("my own notes\n")
    with pytest.raises(ValueError, match="not an unchanged export"):
        open_review(run_dir, tmp_path / "s.sqlite", export=mine)
    assert mine.read_text() == "my own notes\n" and not (tmp_path / "s.sqlite").exists()
    review = open_review(run_dir, tmp_path / "s.sqlite", export=tmp_path / "out.csv")
    review.label([0], "being")
    assert review.export() == 1
    review.label([1], "other")
    assert review.export() == 2                          # our own file, unchanged: replaced
    assert len(read_labels(tmp_path / "out.csv")) == 2
    (tmp_path / "out.csv").write_text("path,label\nedited,by hand\n")
    with pytest.raises(ValueError, match="not an unchanged export"):
        review.export()
    assert (tmp_path / "out.csv").read_text() == "path,label\nedited,by hand\n"
    client = create_app(review, tmp_path / "fresh.csv", tmp_path / "thumbs").test_client()
    assert client.post("/api/export", json={}).json["rows"] == 2
    (tmp_path / "fresh.csv").write_text("changed")
    answer = client.post("/api/export", json={})
    assert answer.status_code == 400 and "not an unchanged export" in answer.json["error"]


def test_a_store_is_new_or_one_review_made(tmp_path, run_dir):
    from data_prep import photos
    folder = tmp_path / "fetched"
    folder.mkdir()
    photos.open_manifest(folder).close()
    manifest = folder / photos.MANIFEST
    foreign = tmp_path / "other.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE labels (item TEXT, label TEXT)")   # a name we use, not ours
    con.commit()
    con.close()
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for path in (manifest, foreign, empty):
        before = path.read_bytes()
        with pytest.raises(ValueError, match="an empty file" if path == empty else "did not make"):
            open_review(run_dir, path, export=tmp_path / "x.csv")
        assert path.read_bytes() == before
        result = subprocess.run([sys.executable, "-m", "dec", "export-labels", str(path),
                                 "--out", str(tmp_path / "y.csv")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr and path.read_bytes() == before
    # a store from before the marker (the same tables, application_id 0) still opens
    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(old)
    con.executescript("CREATE TABLE decisions (id INTEGER PRIMARY KEY, batch INTEGER, action "
                      "TEXT, item TEXT, label TEXT, source TEXT, grp TEXT, time REAL, undone "
                      "INTEGER DEFAULT 0); CREATE TABLE labels (item TEXT PRIMARY KEY, label "
                      "TEXT, decision INTEGER); CREATE TABLE group_names (source TEXT, grp TEXT,"
                      " label TEXT, batch INTEGER, PRIMARY KEY (source, grp));")
    con.close()
    assert open_review(run_dir, old).summary()["reviewed"] == 0


def test_refused_classes_create_no_store(tmp_path, run_dir):
    for classes in (["ok", "../up"], ["a", "a"], ["a", UNSURE]):
        with pytest.raises(ValueError):
            open_review(run_dir, tmp_path / "s.sqlite", classes)
        assert not (tmp_path / "s.sqlite").exists()
    for flag, value in (("--port", "99999"), ("--port", "-1"), ("--page-size", "1000"),
                        ("--page-size", "0")):
        result = subprocess.run([sys.executable, "-m", "dec", "review", str(run_dir), "--labels",
                                 str(tmp_path / "s.sqlite"), flag, value],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "must be" in result.stderr
    assert not (tmp_path / "s.sqlite").exists()


def test_the_page_allows_no_inline_script_and_only_its_own_host(client):
    for path in ("/", "/api/state", "/static/review.js", "/thumb/0"):
        answer = client.get(path)
        assert answer.status_code == 200
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    for host in ("127.0.0.1:8765", "localhost:8765", "localhost"):
        assert client.get("/api/state", headers={"Host": host}).status_code == 200
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example:8765"):
        assert client.get("/api/state", headers={"Host": host}).status_code == 400
        answer = client.post("/api/label", json={"ids": [0], "label": "other"},
                             headers={"Host": host})
        assert answer.status_code == 400
    assert client.get("/api/summary").json["reviewed"] == 0


def test_on_every_interface_the_page_answers_this_machines_names_not_others(run_dir, tmp_path):
    """--host 0.0.0.0 (another machine, out of a container) answered 400 to
    every browser: they name the machine, not 0.0.0.0."""
    import socket
    review = open_review(run_dir, tmp_path / "s.sqlite")
    client = create_app(review, tmp_path / "l.csv", tmp_path / "thumbs", host="0.0.0.0",
                        allowed_hosts=["review.lan"]).test_client()
    names = [socket.gethostname(), "localhost:8765", "127.0.0.1", "review.lan:8765"] + [
        info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    for host in names:
        assert client.get("/api/state", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "0.0.0.0.evil.example", "review.lan.evil.example:8765"):
        assert client.get("/api/state", headers={"Host": host}).status_code == 400, host


def test_the_page_script_builds_no_html_from_strings():
    """The rule the browser test checks with hostile names, kept for the code
    a later change adds: no HTML parsing sinks in the page's script."""
    script = (Path(sources.__file__).with_name("static") / "review.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):
        assert sink not in script, sink


def test_undoing_a_second_rename_restores_the_first(tmp_path, run_dir):
    review = open_review(run_dir, tmp_path / "s.sqlite")
    review.rename(0, "being")
    review.rename(0, "scenery")
    assert review.summary()["groups"][0]["class"] == "scenery"
    review.undo()
    assert review.summary()["groups"][0]["class"] == "being"
    review.undo()
    assert review.summary()["groups"][0]["class"] is None


def test_a_second_server_sees_the_first_ones_labels_in_an_item(tmp_path, run_dir):
    first = open_review(run_dir, tmp_path / "s.sqlite")
    second = open_review(run_dir, tmp_path / "s.sqlite")
    assert second.item(4)["label"] is None
    first.label([4], "other")
    assert second.item(4)["label"] == "other"


def test_an_unfinished_dec_run_or_a_train_run_is_not_offered_as_photos(run_dir, tmp_path):
    """`review` of an interrupted DEC run offered its own figures for labelling."""
    for marker, message in (("stages.json", "a DEC run that has not finished"),
                            ("run.json", "a CaffeNet `train` run")):
        folder = tmp_path / marker
        shutil.copytree(run_dir, folder)
        for finished in ("predictions.csv", "results.json"):
            (folder / finished).unlink(missing_ok=True)
        (folder / marker).write_text("{}")
        from PIL import Image
        Image.new("RGB", (60, 40)).save(folder / "rounds.png")   # a figure: no photo
        assert sources.photo_folder(folder).files           # what review listed before
        with pytest.raises(ValueError, match=message):
            sources.open_source(folder)
        assert not (tmp_path / "s.sqlite").exists()


def test_a_store_among_the_photos_or_an_empty_one_is_refused_for_what_it_is(tmp_path):
    """--labels photos/store.sqlite was refused as an --export nobody typed; an
    empty file was "an SQLite file dec review did not make"."""
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image
    Image.new("RGB", (30, 20)).save(photos / "a.jpg")
    with pytest.raises(ValueError, match="^--labels .*store.sqlite is inside"):
        open_review(photos, photos / "store.sqlite")
    with pytest.raises(ValueError, match="^--export .*out.csv is inside"):
        open_review(photos, tmp_path / "store.sqlite", export=photos / "out.csv")
    (tmp_path / "empty.sqlite").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.sqlite is an empty file, not a review store"):
        open_review(photos, tmp_path / "empty.sqlite")
    assert (tmp_path / "empty.sqlite").read_bytes() == b""
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"]


def test_thumbnails_are_192_pixels_on_their_long_side(tmp_path):
    from PIL import Image
    Image.new("RGB", (400, 300), (200, 10, 10)).save(tmp_path / "big.jpg")
    Image.new("RGB", (60, 90)).save(tmp_path / "small.png")
    with Image.open(thumbs.thumbnail(tmp_path / "big.jpg", tmp_path / "cache")) as small:
        assert small.size == (192, 144)
    with Image.open(thumbs.thumbnail(tmp_path / "small.png", tmp_path / "cache")) as small:
        assert max(small.size) <= 192
