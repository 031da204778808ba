"""Analytics on telemetry: streaming anomaly detection and its evaluation (docs/anomaly.md)."""
