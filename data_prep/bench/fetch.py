"""make bench-fetch: the photo fetcher against a loopback CDN with 20 ms latency.

A server process serves small generated JPEGs, each answer delayed 20 ms; the
fetcher downloads 5000 of them at its default concurrency, then a one-by-one
fetch (concurrency 1) downloads a sample; both rates are printed, with the
peak memory of the fetching process.
"""
import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from .. import photos


def serve(port_file, latency):
    buf = io.BytesIO()
    Image.new("RGB", (96, 72), (120, 160, 40)).save(buf, "JPEG")
    body = buf.getvalue()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    httpd = Server(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(httpd.server_address[1]))
    httpd.serve_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--sequential-images", type=int, default=250)
    parser.add_argument("--latency", type=float, default=0.020)
    parser.add_argument("--concurrency", type=int, default=photos.FetchConfig().concurrency)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port_file = tmp / "port"
        server = subprocess.Popen([sys.executable, "-m", "data_prep.bench.fetch", "--serve",
                                   str(port_file), "--latency", str(args.latency)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}/photo/"
            rates = {}
            for name, n, concurrency in (("concurrent", args.images, args.concurrency),
                                         ("one-by-one", args.sequential_images, 1)):
                listing = tmp / f"{name}.txt"
                listing.write_text("".join(f"00000000-0000-4000-8000-{i:012d} | bench | eng\n"
                                           for i in range(n)))
                config = photos.FetchConfig(base_url=base, concurrency=concurrency)
                summary = photos.fetch(listing, tmp / name, config, progress=False,
                                       log=lambda *a: None)
                assert summary["ok"] == n, summary
                rates[name] = (n, summary["seconds"], n / summary["seconds"])
        finally:
            server.kill()
            server.wait()
    print(f"photo fetch from a loopback server, {args.latency * 1e3:.0f} ms latency per request")
    for name, (n, seconds, rate) in rates.items():
        print(f"  {name:11s} {n:5d} images in {seconds:6.2f} s: {rate:7.1f} images/s")
    print(f"  concurrent (concurrency {args.concurrency}) is "
          f"{rates['concurrent'][2] / rates['one-by-one'][2]:.1f}x the one-by-one rate")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory of the fetching process: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
