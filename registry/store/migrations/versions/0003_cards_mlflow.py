"""Catalog cards indexed for search, and links between registry runs and MLflow runs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_card",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("project", sa.String(200)),
        sa.Column("owner", sa.String(200)),
        sa.Column("backbone", sa.String(300)),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("front_matter", sa.JSON, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("indexed_time", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_card"),
        sa.UniqueConstraint("name", "version", name="uq_model_card_name_version"),
        sa.CheckConstraint("status IN ('draft', 'reviewed', 'deprecated')",
                           name=op.f("ck_model_card_status")),
    )
    op.create_index("ix_model_card_project_name", "model_card", ["project", "name"])

    op.create_table(
        "mlflow_link",
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("tracking_uri", sa.String(1000), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=False),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("digest", sa.String(64)),
        sa.Column("synced_time", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "tracking_uri", name="pk_mlflow_link"),
        sa.UniqueConstraint("tracking_uri", "mlflow_run_id",
                            name="uq_mlflow_link_tracking_uri_mlflow_run_id"),
        sa.ForeignKeyConstraint(["run_pk"], ["run.pk"], name="fk_mlflow_link_run_pk_run",
                                ondelete="CASCADE"),
        sa.CheckConstraint("direction IN ('export', 'import')",
                           name=op.f("ck_mlflow_link_direction")),
    )

    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE card_fts USING fts5(document, tokenize='unicode61')")
    else:
        op.execute(
            "CREATE TABLE card_text ("
            " card_id INTEGER PRIMARY KEY REFERENCES model_card (id) ON DELETE CASCADE,"
            " document TEXT NOT NULL,"
            " tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', document)) STORED)"
        )
        op.execute("CREATE INDEX ix_card_text_tsv ON card_text USING GIN (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE card_fts")
    else:
        op.execute("DROP TABLE card_text")
    op.drop_table("mlflow_link")
    op.drop_index("ix_model_card_project_name", "model_card")
    op.drop_table("model_card")
