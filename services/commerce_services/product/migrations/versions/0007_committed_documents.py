"""The committed revision's copy next to its head (product/catalog/committed_documents.py).

Products committed before it have none and are read by key from MongoDB until their next
commit or the catalog upkeep (`complete_projection`) gives them one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import MEDIUMTEXT

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column at the end: MariaDB adds it in place, without copying the table.
    op.add_column(
        "product_mappings",
        sa.Column(
            "document", MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_bin"), nullable=True
        ),
    )


def downgrade() -> None:
    op.drop_column("product_mappings", "document")
