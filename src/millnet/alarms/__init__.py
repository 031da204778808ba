"""Alarms: the ISA-18.2 lifecycle, its store and audit trail, EEMUA 191 figures (docs/alarms.md)."""
