"""Mirrors of an identifier node replaying its transaction log."""
