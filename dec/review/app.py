"""The review page's web app (Flask) and its server (waitress).

Images are asked for by number; a number names an item of the source, and
its file is sent only when its real path lies under one of the source's
folders. The page itself is plain HTML/CSS/JS in static/, no build step.

Everything the page shows from data is text, never HTML (static/review.js);
the server backs that with a Content-Security-Policy that allows no inline
script, and answers only requests whose Host is the address it listens on
(a DNS-rebinding page names its own host and is refused).
"""
from pathlib import Path

from flask import Flask, abort, jsonify, request, send_file

from . import thumbs

STATIC = Path(__file__).with_name("static")
LOOPBACK = ("127.0.0.1", "localhost")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


WILDCARD = ("0.0.0.0", "")


def machine_names():
    """This machine's name, full name and IPv4 addresses: what a browser on
    another machine (or the host of a container) puts in Host."""
    import socket
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names.update(info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET))
        except OSError:
            pass
    return names


def trusted_hosts(host, allowed=()):
    """The Host names a request may carry: the listening address (any loopback
    name when it is a loopback one); for 0.0.0.0 (every interface: another
    machine, a container's published port) the machine's own names and
    addresses and loopback's. `allowed`: more names (--allow-host)."""
    for name in (host, *allowed):
        if ":" in name:       # werkzeug's Host check cannot match IPv6 literals
            raise ValueError(f"{name}: an IPv6 address; use a name or an IPv4 address")
    if host in LOOPBACK:
        names = set(LOOPBACK)
    elif host in WILDCARD:
        names = set(LOOPBACK) | machine_names()
    else:
        names = {host}
    return sorted(names | set(allowed))


def create_app(review, export_path=None, thumbs_dir=None, page_size=60, host="127.0.0.1",
               allowed_hosts=()):
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.json.sort_keys = False          # counts in class order, as the page shows them
    # Flask answers a request naming another Host with 400.
    app.config["TRUSTED_HOSTS"] = trusted_hosts(host, allowed_hosts)
    thumbs_dir = Path(thumbs_dir or thumbs.default_cache())
    export_path = Path(export_path or review.export_path)
    review.source.check_output(export_path, "the export")   # refused now, not at the button
    review.store.check_export(export_path)

    @app.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.errorhandler(ValueError)
    def bad_request(err):
        return jsonify(error=str(err)), 400

    @app.errorhandler(OSError)        # e.g. the export folder is not writable: one line
    def failed(err):
        return jsonify(error=str(err)), 500

    def body():
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def ids_of(data):
        ids = data.get("ids")
        if not isinstance(ids, list):
            raise ValueError("ids: a list of item numbers")
        return ids

    def file_of(i):
        if not 0 <= i < len(review.source):
            abort(404)
        real = review.source.allowed(i)
        if real is None or not Path(real).is_file():
            abort(404)
        return real

    @app.get("/")
    def index():
        return send_file(STATIC / "index.html", max_age=0)

    @app.get("/api/state")
    def state():
        source = review.source
        return jsonify(source={"kind": source.kind, "path": str(source.path),
                               "groups": source.groups},
                       classes=review.classes, labels=review.labels, page_size=page_size,
                       export=str(export_path), summary=review.summary())

    @app.get("/api/summary")
    def summary():
        return jsonify(review.summary())

    @app.get("/api/page")
    def page():
        args = request.args
        try:
            group, number = int(args.get("group", 0)), int(args.get("page", 0))
            size = int(args.get("size", page_size))
        except ValueError:
            raise ValueError("group, page and size are whole numbers") from None
        if not 1 <= size <= 500:
            raise ValueError("size is 1 to 500")
        return jsonify(review.page(group, args.get("order", "desc"), number, size))

    @app.get("/api/item/<int:i>")
    def item(i):
        return jsonify(review.item(review.check_id(i)))

    @app.post("/api/label")
    def label():
        data = body()
        return jsonify(review.label(ids_of(data), data.get("label")) | {"summary": review.summary()})

    @app.post("/api/accept")
    def accept():
        data = body()
        return jsonify(review.accept(ids_of(data), data.get("label")) | {"summary": review.summary()})

    @app.post("/api/rename")
    def rename():
        data = body()
        group = data.get("group")
        if not isinstance(group, int):
            raise ValueError("group: a group number")
        return jsonify(review.rename(review.check_group(group), data.get("label"))
                       | {"summary": review.summary()})

    @app.post("/api/undo")
    def undo():
        return jsonify(review.undo() | {"summary": review.summary()})

    @app.post("/api/export")
    def export():
        return jsonify(path=str(export_path), rows=review.export(export_path))

    @app.get("/thumb/<int:i>")
    def thumb(i):
        real = file_of(i)
        try:
            path = thumbs.thumbnail(real, thumbs_dir)
        except Exception:                      # not an image after all: the page shows a gap
            abort(415)
        return send_file(path, mimetype="image/jpeg", max_age=3600)

    @app.get("/image/<int:i>")
    def image(i):
        real = file_of(i)
        try:
            content, mimetype = thumbs.viewable(real)
        except Exception:
            abort(415)
        if isinstance(content, bytes):
            from io import BytesIO
            return send_file(BytesIO(content), mimetype=mimetype, max_age=0)
        return send_file(content, mimetype=mimetype, max_age=0)

    return app


def make_server(app, host="127.0.0.1", port=8765, threads=8):
    """A waitress server, listening (port 0: any free one); .run() serves."""
    from waitress import create_server
    return create_server(app, host=host, port=port, threads=threads)


def serve(app, host="127.0.0.1", port=8765, threads=8, ready=print):
    """Serve until interrupted; `ready` gets the address once it listens."""
    import logging
    # "Task queue depth is N": every thread busy for a moment; nothing a
    # reviewer can act on.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = make_server(app, host, port, threads)
    ready(f"http://{host}:{server.effective_port}/")
    try:
        server.run()
    finally:
        server.close()
