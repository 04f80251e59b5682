#!/usr/bin/env bash
# Download STL-10's binary release (2.6 GB; needs the internet), check its MD5
# and unpack it.   data_prep/fetch_stl10.sh [DEST]   (default data/stl10)
set -euo pipefail
dest=${1:-data/stl10}
url=http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz
md5=91f7769df0f17e558f3565bffb0c7dfb   # as published with torchvision's STL10 loader
mkdir -p "$dest"
archive=$dest/stl10_binary.tar.gz
if ! { [ -f "$archive" ] && echo "$md5  $archive" | md5sum -c --quiet - 2>/dev/null; }; then
  curl -fSL --retry 3 -C - -o "$archive.part" "$url"
  echo "$md5  $archive.part" | md5sum -c --quiet - ||
    { echo "fetch_stl10.sh: MD5 mismatch for $url" >&2; exit 1; }
  mv "$archive.part" "$archive"
fi
[ -f "$dest/stl10_binary/train_X.bin" ] || tar xzf "$archive" -C "$dest"
echo "$dest/stl10_binary"
