"""Tests need no set-up beyond the venv; those marked `caffe` need the Caffe
build (`make caffe`). Helpers shared by the tests: tests/helpers.py."""
