"""Monitoring federation: enterprise -> secondary -> national nodes (issue 13)."""
