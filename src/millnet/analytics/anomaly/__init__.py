"""Streaming anomaly detectors that learn normal behaviour online."""
