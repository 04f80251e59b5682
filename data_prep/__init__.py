"""Command-line entry points for data preparation (the logic lives in dec/)."""
