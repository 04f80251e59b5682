#!/usr/bin/env bash
# Download MNIST's four IDX files (needs the internet) and check their MD5s.
#   data_prep/fetch_mnist.sh [DEST]     (default data/mnist-idx)
set -euo pipefail
dest=${1:-data/mnist-idx}
mirrors=(https://ossci-datasets.s3.amazonaws.com/mnist http://yann.lecun.com/exdb/mnist)
# MD5s as published with torchvision's MNIST loader.
declare -A md5=(
  [train-images-idx3-ubyte.gz]=f68b3c2dcbeaaa9fbdd348bbdeb94873
  [train-labels-idx1-ubyte.gz]=d53e105ee54ea40749a09fcbcd1e9432
  [t10k-images-idx3-ubyte.gz]=9fb629c4189551a2d022fa330f9573f3
  [t10k-labels-idx1-ubyte.gz]=ec29112dd5afa0611ce80d1b7f02629c
)
mkdir -p "$dest"
for file in "${!md5[@]}"; do
  if [ -f "$dest/$file" ] && echo "${md5[$file]}  $dest/$file" | md5sum -c --quiet - 2>/dev/null; then
    continue
  fi
  ok=0
  for mirror in "${mirrors[@]}"; do
    if curl -fsSL --retry 3 -o "$dest/$file.part" "$mirror/$file" &&
       echo "${md5[$file]}  $dest/$file.part" | md5sum -c --quiet -; then
      mv "$dest/$file.part" "$dest/$file"; ok=1; break
    fi
  done
  rm -f "$dest/$file.part"
  [ "$ok" = 1 ] || { echo "fetch_mnist.sh: could not download $file with the right MD5" >&2; exit 1; }
done
echo "$dest"
