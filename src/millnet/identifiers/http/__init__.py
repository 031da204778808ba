"""The Handle REST JSON API (``/api/handles``), its batch registration, HTTP Basic
authentication of handle principals and the change feed of cache freshness."""
