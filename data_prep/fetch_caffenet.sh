#!/usr/bin/env bash
# bvlc_reference_caffenet.caffemodel from the Caffe model zoo, SHA-1 checked
# (models/bvlc_reference_caffenet/readme.md of BVLC Caffe).
#   data_prep/fetch_caffenet.sh [DEST]   (default data/bvlc_reference_caffenet.caffemodel)
set -euo pipefail
dest=${1:-data/bvlc_reference_caffenet.caffemodel}
url=http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel
sha1=4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46
if [ -f "$dest" ] && echo "$sha1  $dest" | sha1sum -c --quiet - 2>/dev/null; then
  echo "$dest"; exit 0
fi
mkdir -p "$(dirname "$dest")"
curl -fSL --retry 3 -C - -o "$dest.part" "$url"
echo "$sha1  $dest.part" | sha1sum -c --quiet - ||
  { echo "fetch_caffenet.sh: SHA-1 mismatch for $url" >&2; exit 1; }
mv "$dest.part" "$dest"
echo "$dest"
