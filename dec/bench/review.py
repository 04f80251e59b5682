"""make bench-review: the review page on 100 000 generated images, over HTTP
(waitress, as `python -m dec review` serves it): start-up, page latency
(JSON alone, and with the page's thumbnails made cold, fetched six at a time
as a browser does), decisions stored per second, peak memory.

The source is a classify output (four classes, every probability) over a
folder of 100 000 hard links to a few hundred 640x480 JPEGs: every path is its
own image to the page and its thumbnail cache.
"""
import argparse
import http.client
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from data_prep.datasets import SHAPE_COLOURS, shape_image

from ..review import open_review
from ..review.app import create_app, make_server

CLASSES = ("heritage", "being", "scenery", "other")


def make_source(folder, n, distinct=300, seed=0):
    """folder/photos (n files) and folder/classified (predictions.csv, classify.json)."""
    rng = np.random.default_rng(seed)
    photos, out = folder / "photos", folder / "classified"
    (folder / "base").mkdir(parents=True)
    photos.mkdir()
    out.mkdir()
    colours = list(SHAPE_COLOURS.values())
    bases = []
    for i in range(distinct):
        path = folder / "base" / f"{i}.jpg"
        Image.fromarray(shape_image(rng, (640, 480), colours[i % 4])).save(path, quality=90)
        bases.append(path)
    probs = rng.dirichlet(np.ones(len(CLASSES)), n)
    lines = ["file,predicted," + ",".join(f"p_{c}" for c in CLASSES)]
    for i in range(n):
        path = photos / f"photo_{i:06d}.jpg"
        os.link(bases[i % distinct], path)
        lines.append(f"{path},{CLASSES[int(probs[i].argmax())]},"
                     + ",".join(f"{p:.4f}" for p in probs[i]))
    (out / "predictions.csv").write_text("\n".join(lines) + "\n")
    (out / "classify.json").write_text(json.dumps({"source": str(photos)}))
    return out


class Client:
    """One keep-alive HTTP connection, as one browser tab's."""

    def __init__(self, port):
        self.con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path):
        self.con.request("GET", path)
        response = self.con.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status)
        return body

    def post(self, path, data):
        self.con.request("POST", path, json.dumps(data), {"Content-Type": "application/json"})
        response = self.con.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body[:200])
        return json.loads(body)


def percentiles(times):
    ms = np.array(times) * 1000
    return f"median {np.median(ms):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=200, help="page turns timed (JSON)")
    parser.add_argument("--cold-pages", type=int, default=10,
                        help="pages timed with their thumbnails made cold")
    parser.add_argument("--decisions", type=int, default=500)
    parser.add_argument("--page-size", type=int, default=60)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-review-"))
    try:
        start = time.perf_counter()
        source = make_source(tmp, args.images)
        print(f"generated {args.images} images (hard links) in {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        review = open_review(source, tmp / "review.sqlite")
        app = create_app(review, tmp / "labels.csv", tmp / "thumbs", page_size=args.page_size)
        server = make_server(app, port=0)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        client = Client(server.effective_port)
        state = json.loads(client.get("/api/state"))
        startup = time.perf_counter() - start
        rss_started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert state["summary"]["total"] == args.images

        browsers = [Client(server.effective_port) for _ in range(6)]
        pool = ThreadPoolExecutor(len(browsers))

        def page_with_thumbs(group, page):
            items = json.loads(client.get(f"/api/page?group={group}&page={page}"
                                          f"&size={args.page_size}"))["items"]
            ids = [item["id"] for item in items]

            def share(k):                 # connection k fetches every 6th thumbnail
                for i in ids[k::len(browsers)]:
                    browsers[k].get(f"/thumb/{i}")
            list(pool.map(share, range(len(browsers))))
            return ids

        start = time.perf_counter()
        page_with_thumbs(0, 0)
        first = time.perf_counter() - start

        rng = np.random.default_rng(1)
        sizes = [g["size"] for g in state["summary"]["groups"]]
        turns = []
        for _ in range(args.pages):
            group = int(rng.integers(len(sizes)))
            page = int(rng.integers(-(-sizes[group] // args.page_size)))
            order = ("desc", "asc")[int(rng.integers(2))]
            t = time.perf_counter()
            client.get(f"/api/page?group={group}&order={order}&page={page}"
                       f"&size={args.page_size}")
            turns.append(time.perf_counter() - t)
        cold = []
        for k in range(args.cold_pages):
            t = time.perf_counter()
            page_with_thumbs(k % len(sizes), 1 + k)
            cold.append(time.perf_counter() - t)

        ids = rng.permutation(args.images)[:args.decisions]
        t = time.perf_counter()
        for i in ids:
            client.post("/api/label", {"ids": [int(i)], "label": CLASSES[int(i) % 4]})
        decisions = args.decisions / (time.perf_counter() - t)
        t = time.perf_counter()
        client.post("/api/export", {})
        export = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for c in [client] + browsers:
            c.con.close()
        pool.shutdown()
        server.close()
        thread.join(10)

        print(f"review page, {args.images} images, {len(sizes)} groups, "
              f"{args.page_size} a page ({os.cpu_count()} cores)")
        print(f"  start-up (source read, store opened, first answer)  {startup * 1000:7.0f} ms")
        print(f"  first page with its thumbnails, cold                {first * 1000:7.0f} ms")
        print(f"  page turn, JSON ({args.pages} random pages)      {percentiles(turns)}")
        print(f"  page turn with cold thumbnails ({args.cold_pages})  {percentiles(cold)}")
        print(f"  decisions stored (one HTTP request, one SQLite transaction each, "
              f"synchronous=FULL)  {decisions:7.0f} /s")
        print(f"  export labels.csv ({args.decisions} rows)          {export * 1000:7.0f} ms")
        print(f"  memory: {rss_started:.0f} MiB after start-up, peak {peak:.0f} MiB "
              "(the benchmark's own client included)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
