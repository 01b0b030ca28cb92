"""A fuzzer for llmeval's input handling: mutated suites and datasets must end with exit 0 or 2, a
positioned message, no traceback, within 10 s of CPU and 500 MB. `tests/fuzz/test_fuzz.py` runs a
fixed-seed sample with the test suite; `make fuzz` runs the full set and prints a table."""
