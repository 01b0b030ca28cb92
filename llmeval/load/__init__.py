"""Loading a suite: the file (or a dict) read, validated and checked against itself, its cases
expanded (inline, datasets, conversations) and selected, its metrics and per-case assertions built."""
