"""Federation links: node identities, enrollment tokens, children, durable outbox and idempotent inbox (issue 13).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Tables are added here by the work that defines them."""


def downgrade() -> None:
    """Nothing to undo yet."""
