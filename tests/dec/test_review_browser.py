"""The review page in a real headless Chromium (Debian's chromium +
chromium-driver, installed by make from docker/apt-packages.txt), driven by
Selenium through the system driver: nothing is downloaded. Every wait is for
a condition on the page (the action queue idle, a count shown), never a sleep.
"""
import os
import shutil
import sqlite3
import threading

import pytest

from data_prep.labels import read_labels
from dec.review import open_review
from dec.review.app import create_app, make_server
from tests.helpers import make_dec_run

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAGE = 8                       # 12 images a cluster: two pages


@pytest.fixture
def served(tmp_path):
    run_dir = make_dec_run(tmp_path / "run")
    review = open_review(run_dir, tmp_path / "review.sqlite")
    server = make_server(create_app(review, tmp_path / "labels.csv", tmp_path / "thumbs",
                                    page_size=PAGE), port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}/", review, tmp_path
    server.close()
    thread.join(10)


@pytest.fixture
def browser():
    for program in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(program), f"{program} is missing: make installs Debian's chromium " \
                                      "and chromium-driver (docker/apt-packages.txt)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def idle(driver, condition=None, timeout=60):
    """Wait until the page's action queue is empty (and `condition` holds)."""
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.busy") == "0"
        and (condition is None or condition(d)))


def press(driver, *keys, shift=False):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    actions = ActionChains(driver)
    for key in keys:
        if shift:
            actions.key_down(Keys.SHIFT).send_keys(key).key_up(Keys.SHIFT)
        else:
            actions.send_keys(key)
    actions.perform()


def reviewed(driver):
    return int(driver.find_element("id", "progress").get_attribute("data-reviewed"))


def labels_in_store(path):
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT item, label FROM labels"))
    finally:
        con.close()


def shown(driver):
    """(item id, label badge) of every cell on the page."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.cell')].map(c => "
        "[Number(c.dataset.id), (c.querySelector('.badge') || {}).textContent || null])")


def test_review_by_keyboard_in_chromium(served, browser):
    url, review, folder = served
    files = review.source.files
    browser.get(url)
    idle(browser, lambda d: len(shown(d)) == PAGE)
    assert "reviewed 0 / 36" in browser.find_element("id", "progress").text
    first = shown(browser)
    # each caption: the file and the model's q for its cluster, most sure first
    captions = [c.text for c in browser.find_elements("css selector", "figcaption")]
    sure = [float(c.rsplit(" · ", 1)[1]) for c in captions]
    assert len(sure) == PAGE and sure == sorted(sure, reverse=True) and 0 < sure[-1] <= 1

    # digit 2 labels the focused image "being" (heritage's initial is the move key h)
    press(browser, "2")
    idle(browser, lambda d: reviewed(d) == 1)
    assert labels_in_store(folder / "review.sqlite") == {files[first[0][0]]: "being"}
    # the focus moved on: "s" (scenery's initial) labels the second image, x the third
    press(browser, "s", "x")
    idle(browser, lambda d: reviewed(d) == 3)
    assert [label for _, label in shown(browser)[:3]] == ["being", "scenery", "unsure"]
    # u takes the last back and focuses that image again
    press(browser, "u")
    idle(browser, lambda d: reviewed(d) == 2)
    assert shown(browser)[2][1] is None
    # l moves right, h back: the focus ends on the fourth cell; o labels it "other"
    press(browser, "l", "l", "h")
    press(browser, "o")
    idle(browser, lambda d: reviewed(d) == 3)
    assert shown(browser)[2][1] is None and shown(browser)[3][1] == "other"

    # shift+1: the rest of the page is heritage, and the next page comes
    press(browser, "1", shift=True)
    idle(browser, lambda d: reviewed(d) == PAGE and "page 2 / 2" in d.find_element(
        "id", "pageinfo").text)
    store = labels_in_store(folder / "review.sqlite")
    assert [store[files[i]] for i, _ in first] == \
        ["being", "scenery", "heritage", "other"] + ["heritage"] * (PAGE - 4)
    second_page = shown(browser)
    assert all(label is None for _, label in second_page)

    # a reload comes back to the same page with the same counts
    browser.refresh()
    idle(browser, lambda d: len(shown(d)) == 12 - PAGE)
    assert shown(browser) == second_page and reviewed(browser) == PAGE
    assert "heritage 5" in browser.find_element("id", "counts").text

    # the next group, named as a class in one step with the mouse
    press(browser, "]")
    idle(browser, lambda d: d.find_element("id", "group").get_attribute("value") == "1")
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element("id", "rename-class")).select_by_visible_text("scenery")
    browser.find_element("id", "rename-button").click()
    idle(browser, lambda d: reviewed(d) == PAGE + 12)
    assert "cluster 1 → scenery" in browser.find_element("id", "group").text

    # ? shows the keys, Escape hides them
    press(browser, "?")
    assert browser.find_element("id", "help").is_displayed()
    press(browser, "\ue00c")                                       # Escape
    assert not browser.find_element("id", "help").is_displayed()

    browser.find_element("id", "export").click()
    idle(browser, lambda d: (folder / "labels.csv").exists())
    exported = dict((str(p), label) for p, label in read_labels(folder / "labels.csv"))
    assert exported == labels_in_store(folder / "review.sqlite")   # nothing unsure left here
    assert sum(label == "scenery" for label in exported.values()) == 13

    # [ goes back to the first cluster: its first page as labelled above
    press(browser, "[")
    idle(browser, lambda d: d.find_element("id", "group").get_attribute("value") == "0")
    assert [label for _, label in shown(browser)] == \
        ["being", "scenery", "heritage", "other"] + ["heritage"] * (PAGE - 4)
    shot = folder / "review.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("REVIEW_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["REVIEW_SCREENSHOT"])


def test_classes_named_by_digits_have_their_digit(tmp_path, browser):
    """DEC on digits: class "7" is the key 7, and "0" the key 0, not the
    class at that position."""
    review = open_review(make_dec_run(tmp_path / "run"), tmp_path / "review.sqlite",
                         [str(d) for d in range(10)])
    server = make_server(create_app(review, tmp_path / "labels.csv", tmp_path / "thumbs"),
                         port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.effective_port}/")
        idle(browser, lambda d: len(shown(d)) == 12)
        press(browser, "7", "0")
        idle(browser, lambda d: reviewed(d) == 2)
        assert [label for _, label in shown(browser)[:2]] == ["7", "0"]
    finally:
        server.close()
        thread.join(10)


# Each one would run script if the page parsed it as HTML (onerror fires
# when the broken image loads; the svg one at parse time).
HOSTILE = ["<img src=x onerror=document.body.setAttribute('data-pwned','1')>",
           "<svg onload=document.body.setAttribute('data-pwned','2')>",
           "x' onmouseover='document.body.setAttribute(`data-pwned`,3)"]


def serve_review(review, tmp_path):
    server = make_server(create_app(review, tmp_path / "labels.csv", tmp_path / "thumbs"),
                         port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.effective_port}/"


def pwned(driver):
    return driver.execute_script("return document.body.getAttribute('data-pwned')")


def test_hostile_names_are_shown_as_text_and_never_run(tmp_path, browser):
    """Class names (a labels CSV's labels, --classes), group names, file names
    and a fetch manifest's descriptions, all made of HTML that would run."""
    from PIL import Image

    from data_prep import photos as photo_store
    folder = tmp_path / "fetched"
    folder.mkdir()
    names = [f"{text}.png" for text in HOSTILE]
    for name in names:
        Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / name)
    con = photo_store.open_manifest(folder)
    with con:
        for n, name in enumerate(names):
            con.execute("INSERT INTO photos (uuid, descriptions, status, file, first_seen, "
                        "updated) VALUES (?, ?, 'ok', ?, 0, 0)",
                        (f"u{n}", '{"%s": "%s"}' % (HOSTILE[n].replace('"', ""),
                                                     HOSTILE[(n + 1) % 3]), name))
    con.close()
    listed = tmp_path / "hostile.csv"
    with open(listed, "w", newline="") as f:
        import csv
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for n, name in enumerate(names):
            writer.writerow([folder / name, HOSTILE[n]])

    from selenium.webdriver.common.by import By
    for source, classes in ((listed, None), (folder, HOSTILE)):
        store = tmp_path / f"{source.name}.sqlite"
        review = open_review(source, store, classes)
        out = tmp_path / f"out-{source.stem}"
        out.mkdir()
        server, thread, url = serve_review(review, out)
        try:
            browser.get(url)
            idle(browser, lambda d: len(shown(d)) >= 1)
            press(browser, "1")                      # a label badge with a hostile name
            idle(browser, lambda d: reviewed(d) == 1)
            press(browser, "h")                      # back: the detail of the labelled one
            idle(browser, lambda d: HOSTILE[0] in d.find_element(By.ID, "meta").text)
            press(browser, "?")
            help_text = browser.find_element(By.ID, "keys").text
            press(browser, "\ue00c")
            page_text = browser.find_element(By.TAG_NAME, "body").text
            options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#group option")]
            assert pwned(browser) is None
            for text in HOSTILE:                      # shown, as the text it is
                assert text in help_text
            assert HOSTILE[0] in page_text               # counts, badge, detail
            assert [badge.text for badge in browser.find_elements(By.CSS_SELECTOR,
                                                                   ".cell .badge")] == [HOSTILE[0]]
            if source == listed:                       # groups are the labels
                assert all(any(text in o for o in options) for text in HOSTILE)
            else:                                      # file names and descriptions
                captions = [c.text for c in browser.find_elements(By.TAG_NAME, "figcaption")]
                assert sorted(captions) == sorted(names)
                meta = browser.find_element(By.ID, "meta").text
                assert HOSTILE[1] in meta
            # the page parsed no element out of the data
            assert browser.execute_script(
                "return document.querySelectorAll('#grid svg, #meta img, #counts img, "
                "#keys img, .badge *').length") == 0
        finally:
            server.close()
            thread.join(10)
