"""Data others can fetch: ``run_dataset.pushed``, whether the dataset version a run used was in
the workspace's DVC remote when the run recorded it (NULL: unknown, as for every existing use:
no remote was asked).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("run_dataset", sa.Column("pushed", sa.Boolean))


def downgrade() -> None:
    with op.batch_alter_table("run_dataset") as batch:
        batch.drop_column("pushed")
