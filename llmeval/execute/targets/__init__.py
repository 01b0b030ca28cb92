"""Targets: the systems under test (model, http, python, recorded outputs)."""
