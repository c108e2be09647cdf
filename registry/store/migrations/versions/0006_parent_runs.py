"""Nested runs: ``run.parent_id``, the id of the run a run is nested in (MLflow's
``mlflow.parentRunId``, a sweep's trials, cross-validation folds), indexed for "the children
of this run". Existing runs have none.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("run", sa.Column("parent_id", sa.String(64)))
    op.create_index("ix_run_parent_id", "run", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_run_parent_id", "run")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("parent_id")
