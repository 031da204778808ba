"""Manufacturing KPIs after ISO 22400-2 (availability, performance, quality, OEE, MTBF, MTTR)
per machine, line and shift, and continuous roll-ups (docs/kpi.md)."""
