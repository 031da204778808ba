"""Rules: definitions, the safe expression language, and evaluation on the ingest stream
(issue 12; docs/rules.md)."""
