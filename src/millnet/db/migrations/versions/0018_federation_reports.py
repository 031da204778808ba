"""Inventory, advisories, rectification orders and the reports a parent keeps of its children (issue 13).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Tables are added here by the work that defines them."""


def downgrade() -> None:
    """Nothing to undo yet."""
