"""Tests need no set-up beyond the venv; those marked `caffe` need the Caffe
build (`make caffe`). Helpers shared by the tests: tests/helpers.py."""
import os
from pathlib import Path

import pytest

# All 70 000 MNIST digits: HEOBS_MNIST_DIR, else the project's shared data
# beside the checkout (our machines and CI have it; users may not).
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir():
    folder = Path(os.environ.get("HEOBS_MNIST_DIR") or SHARED_MNIST)
    if (folder / "train-images-idx3-ubyte.gz").exists() or \
            (folder / "train-images-idx3-ubyte").exists():
        return folder
    message = (f"needs all of MNIST: {folder} has no IDX files (set HEOBS_MNIST_DIR, or "
               "make mnist-data)")
    if os.environ.get("CI"):               # CI has the files: never a silent skip there
        pytest.fail(message)
    pytest.skip(message)
