"""Traceability after GS1 EPCIS 2.0 (issue 15): capture (schema validation, the standard event
hash), the repository on the node's database, queries, the trace graph across nodes, and the
events the node emits itself. docs/traceability.md."""
