"""Knowledge layer: MoV definitions and measurements, similarity keys, free-text index.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("model_family", sa.String(100)))
        batch.add_column(sa.Column("data_key", sa.String(64)))
    op.create_index("ix_run_name", "run", ["name"])
    op.create_index("ix_run_start_time", "run", ["start_time"])
    op.create_index("ix_run_data_key_start_time", "run", ["data_key", "start_time"])
    op.create_index("ix_run_model_family_start_time", "run", ["model_family", "start_time"])

    op.create_table(
        "mov_definition",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(50), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("baseline", sa.Double, nullable=False),
        sa.Column("target", sa.Double, nullable=False),
        sa.Column("stakeholder", sa.String(200)),
        sa.Column("description", sa.Text),
        sa.Column("created_time", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mov_definition"),
        sa.UniqueConstraint("project_id", "name", name="uq_mov_definition_project_id_name"),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"],
                                name="fk_mov_definition_project_id_project", ondelete="CASCADE"),
        sa.CheckConstraint("direction IN ('higher', 'lower')",
                           name=op.f("ck_mov_definition_direction")),
    )
    op.create_table(
        "mov_measurement",
        sa.Column("id", BigId, nullable=False),
        sa.Column("definition_id", sa.Integer, nullable=False),
        sa.Column("run_pk", BigId),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("evidence", sa.Text),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mov_measurement"),
        sa.ForeignKeyConstraint(["definition_id"], ["mov_definition.id"],
                                name="fk_mov_measurement_definition_id_mov_definition",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_pk"], ["run.pk"], name="fk_mov_measurement_run_pk_run",
                                ondelete="SET NULL"),
    )
    op.create_index("ix_mov_measurement_definition_id_time", "mov_measurement",
                    ["definition_id", "time"])
    op.create_index("ix_mov_measurement_run_pk", "mov_measurement", ["run_pk"])

    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE run_fts USING fts5(document, tokenize='unicode61')")
    else:
        op.execute(
            "CREATE TABLE run_text ("
            " run_pk BIGINT PRIMARY KEY REFERENCES run (pk) ON DELETE CASCADE,"
            " document TEXT NOT NULL,"
            " tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', document)) STORED)"
        )
        op.execute("CREATE INDEX ix_run_text_tsv ON run_text USING GIN (tsv)")
    _backfill_text()


def _backfill_text() -> None:
    """Index the text of runs recorded before this revision."""
    from registry.store.textindex import refresh_all

    refresh_all(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE run_fts")
    else:
        op.execute("DROP TABLE run_text")
    op.drop_table("mov_measurement")
    op.drop_table("mov_definition")
    op.drop_index("ix_run_model_family_start_time", "run")
    op.drop_index("ix_run_data_key_start_time", "run")
    op.drop_index("ix_run_name", "run")
    op.drop_index("ix_run_start_time", "run")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("data_key")
        batch.drop_column("model_family")
