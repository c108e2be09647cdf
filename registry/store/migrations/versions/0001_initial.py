"""Initial schema: projects, runs, params, tags, metrics, datasets, artifacts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _run_fk() -> sa.ForeignKey:
    return sa.ForeignKey("run.pk", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "project",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_time", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_project"),
        sa.UniqueConstraint("name", name="uq_project_name"),
    )
    op.create_table(
        "run",
        sa.Column("pk", BigId, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(500)),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.Double, nullable=False),
        sa.Column("end_time", sa.Double),
        sa.Column("heartbeat_time", sa.Double),
        sa.Column("heartbeat_interval", sa.Double),
        sa.Column("question", sa.Text),
        sa.Column("notes", sa.Text),
        sa.Column("conclusion", sa.Text),
        sa.Column("failure", sa.Text),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("code_state", sa.String(16)),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("git_branch", sa.String(500)),
        sa.Column("git_remote", sa.Text),
        sa.Column("git_dirty", sa.Boolean),
        sa.Column("git_diff_sha256", sa.String(64)),
        sa.Column("command", sa.Text),
        sa.Column("entry_point", sa.Text),
        sa.Column("cwd", sa.Text),
        sa.Column("hostname", sa.String(255)),
        sa.Column("hardware", sa.JSON),
        sa.Column("environment", sa.JSON),
        sa.Column("code", sa.JSON),
        sa.Column("warnings", sa.JSON),
        sa.Column("mlflow_run_id", sa.String(64)),
        sa.PrimaryKeyConstraint("pk", name="pk_run"),
        sa.UniqueConstraint("id", name="uq_run_id"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name="fk_run_project_id_project", ondelete="RESTRICT"
        ),
        sa.CheckConstraint(
            "status IN ('RUNNING', 'FINISHED', 'FAILED', 'KILLED')", name=op.f("ck_run_status")
        ),
    )
    op.create_index("ix_run_project_id_start_time", "run", ["project_id", "start_time"])
    op.create_index("ix_run_owner_start_time", "run", ["owner", "start_time"])
    op.create_index("ix_run_status", "run", ["status"])
    op.create_index("ix_run_fingerprint", "run", ["fingerprint"])
    op.create_index("ix_run_git_commit", "run", ["git_commit"])

    op.create_table(
        "param",
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("vtype", sa.String(8), nullable=False),
        sa.Column("value_text", sa.Text),
        sa.Column("value_num", sa.Double),
        sa.PrimaryKeyConstraint("run_pk", "key", name="pk_param"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["run.pk"], name="fk_param_run_pk_run", ondelete="CASCADE"
        ),
        sa.CheckConstraint(
            "vtype IN ('int', 'float', 'bool', 'str', 'null', 'json')", name=op.f("ck_param_vtype")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_param_key_value_num_run_pk", "param", ["key", "value_num", "run_pk"])

    op.create_table(
        "tag",
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "key", name="pk_tag"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["run.pk"], name="fk_tag_run_pk_run", ondelete="CASCADE"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_tag_key_value_run_pk", "tag", ["key", "value", "run_pk"])

    op.create_table(
        "metric_chunk",
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("min_step", sa.BigInteger, nullable=False),
        sa.Column("max_step", sa.BigInteger, nullable=False),
        sa.Column("steps", sa.LargeBinary, nullable=False),
        sa.Column("values", sa.LargeBinary, nullable=False),
        sa.Column("times", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "key", "seq", name="pk_metric_chunk"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["run.pk"], name="fk_metric_chunk_run_pk_run", ondelete="CASCADE"
        ),
    )

    op.create_table(
        "metric_summary",
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("last", sa.Double),
        sa.Column("last_nonfinite", sa.String(4)),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("last_time", sa.Double, nullable=False),
        sa.Column("min", sa.Double),
        sa.Column("max", sa.Double),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("nonfinite_count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "key", name="pk_metric_summary"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["run.pk"], name="fk_metric_summary_run_pk_run", ondelete="CASCADE"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_metric_summary_key_last_run_pk", "metric_summary",
                    ["key", "last", "run_pk"])

    op.create_table(
        "dataset",
        sa.Column("id", BigId, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("hash", sa.String(80)),
        sa.Column("hash_kind", sa.String(16)),
        sa.Column("size", sa.BigInteger),
        sa.Column("nfiles", sa.BigInteger),
        sa.Column("remote", sa.Text),
        sa.Column("source", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_dataset"),
    )
    op.create_index("ix_dataset_hash_path", "dataset", ["hash", "path"], unique=True)

    op.create_table(
        "run_dataset",
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("dataset_id", BigId, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("tracked", sa.Boolean, nullable=False),
        sa.Column("dirty", sa.Boolean),
        sa.Column("dirty_check", sa.String(16)),
        sa.PrimaryKeyConstraint("run_pk", "dataset_id", "role", name="pk_run_dataset"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["run.pk"], name="fk_run_dataset_run_pk_run", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["dataset.id"], name="fk_run_dataset_dataset_id_dataset",
            ondelete="RESTRICT",
        ),
    )
    op.create_index("ix_run_dataset_dataset_id", "run_dataset", ["dataset_id"])

    op.create_table(
        "artifact",
        sa.Column("run_pk", BigId, nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("created_time", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("run_pk", "name", name="pk_artifact"),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["run.pk"], name="fk_artifact_run_pk_run", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_artifact_sha256", "artifact", ["sha256"])


def downgrade() -> None:
    for table in ("artifact", "run_dataset", "dataset", "metric_summary", "metric_chunk", "tag",
                  "param", "run", "project"):
        op.drop_table(table)
