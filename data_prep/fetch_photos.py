"""Fetch heobs.org photos listed in photos.txt (report §2).

  python -m data_prep.fetch_photos fetch photos.txt --out photos/ [options]
  python -m data_prep.fetch_photos verify --out photos/
  python -m data_prep.fetch_photos export --out photos/ [--csv photos.csv]

Re-running `fetch` after an interrupt fetches only what is not yet ok.
"""
import argparse
import json
import sys

from dec import photos


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m data_prep.fetch_photos",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="download every photo of photos.txt")
    p.add_argument("photos_txt")
    p.add_argument("--out", required=True, help="folder for the images and manifest.sqlite")
    defaults = photos.FetchConfig()
    p.add_argument("--base-url", default=defaults.base_url)
    p.add_argument("--size", choices=photos.SIZES, help="the CDN's size (default: original)")
    p.add_argument("--concurrency", type=int, default=defaults.concurrency)
    p.add_argument("--max-rate", type=float, help="cap on requests per second")
    p.add_argument("--timeout", type=float, default=defaults.timeout)
    p.add_argument("--retries", type=int, default=defaults.retries)
    p.add_argument("--backoff", type=float, default=defaults.backoff)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("verify", help="re-check the files on disk against the manifest")
    p.add_argument("--out", required=True)
    p = sub.add_parser("export", help="write photos.csv (uuid, file, size, descriptions)")
    p.add_argument("--out", required=True)
    p.add_argument("--csv")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            if args.concurrency < 1:
                raise ValueError("--concurrency must be at least 1")
            config = photos.FetchConfig(
                base_url=args.base_url, size=args.size, concurrency=args.concurrency,
                timeout=args.timeout, retries=args.retries, backoff=args.backoff,
                max_rate=args.max_rate)
            summary = photos.fetch(args.photos_txt, args.out, config, progress=not args.quiet)
            print(photos.format_summary(summary))
        elif args.command == "verify":
            problems = photos.verify(args.out)
            print(json.dumps(problems) if problems else "every ok file matches the manifest")
        else:
            path, count = photos.export(args.out, args.csv)
            print(f"{count} photos → {path}")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
