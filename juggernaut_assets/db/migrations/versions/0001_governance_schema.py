"""Governance schema: production's tables plus ours, reconciled additively.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from juggernaut_assets.db.schema import ensure_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ensure_schema(op.get_bind())


def downgrade() -> None:
    raise RuntimeError("governance migrations are additive only; there is no downgrade")
