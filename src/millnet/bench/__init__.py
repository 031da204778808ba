"""Benchmarks runnable from the CLI (``millnet bench ...``); each returns a JSON-able dict."""
