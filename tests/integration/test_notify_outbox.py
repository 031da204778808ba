"""The outbox table on SQLite and PostgreSQL: migration 0013 matches the metadata; journal
order, pending rows read back, pruning of finished rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from millnet.db.migrate import VERSION_TABLE
from millnet.db.schema import metadata
from millnet.notify.outbox import NewRow, OutboxStore, Outcome
from millnet.notify.schema import notify_outbox
from tests.integration.registry_fixtures import registry_url
from tests.integration.test_notify_webhook import notice

__all__ = ["registry_url"]  # a fixture (SQLite and PostgreSQL), imported to be found by pytest


def test_migration_0013_matches_the_outbox_table(registry_url: str) -> None:
    with OutboxStore.open(registry_url) as store, store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        diffs = compare_metadata(context, metadata)

    def ours(diff: object) -> bool:
        return notify_outbox.name in repr(diff)

    assert [d for d in diffs if ours(d)] == []


def test_rows_outcomes_pending_and_pruning(registry_url: str) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    second = notice(2)
    with OutboxStore.open(registry_url) as store:
        store.apply([
            NewRow("d1", "ops", notice(1), t0), NewRow("d2", "ops", second, t0),
            Outcome("d1", "delivered", 1, t0 + timedelta(seconds=1)),
            NewRow("d3", "mail", notice(3), t0),
            Outcome("d2", "pending", 1, t0, next_attempt_at=t0 + timedelta(seconds=30),
                    last_error="HTTP 503"),
            Outcome("d3", "failed", 2, t0 + timedelta(seconds=2), last_error="x" * 5000),
        ])
        [pending] = store.pending()
        assert (pending.delivery_id, pending.target, pending.attempts) == ("d2", "ops", 1)
        assert pending.notice == second
        assert pending.next_attempt_at == t0 + timedelta(seconds=30)
        assert pending.last_error == "HTTP 503"
        assert store.counts() == {("ops", "delivered"): 1, ("ops", "pending"): 1,
                                  ("mail", "failed"): 1}
        assert store.prune(t0 + timedelta(seconds=1)) == 0  # finished at t0+1 s is not before
        assert store.prune(t0 + timedelta(days=1)) == 2
        assert [r.delivery_id for r in store.pending()] == ["d2"]
