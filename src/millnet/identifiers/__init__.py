"""Identifier service: the handle store, prefix delegation and the resolution/admin logic."""
