"""Security events raised by the enterprise node's detectors and by the passive probe (issue 13).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Tables are added here by the work that defines them."""


def downgrade() -> None:
    """Nothing to undo yet."""
