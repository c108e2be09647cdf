"""The registry's tables (SQLAlchemy Core). Alembic migrations create and evolve them.

Child tables reference ``run.pk`` (an integer) rather than the public 32-character run id,
which keeps the metric history and its index small (compare mlflow#12813).
Every constraint is named; every foreign key is indexed; each index says what it serves.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_REVISION",
    "artifact",
    "dataset",
    "metadata",
    "metric_chunk",
    "metric_summary",
    "mlflow_link",
    "model_card",
    "mov_definition",
    "mov_measurement",
    "param",
    "project",
    "run",
    "run_dataset",
    "tag",
]

# The Alembic revision this code writes; tests check it is the migrations' head.
SCHEMA_REVISION = "0007"

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
PARAM_TYPES = ("int", "float", "bool", "str", "null", "json")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Integer primary keys: BIGINT on PostgreSQL, the rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")


def _enum_check(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


project = Table(
    "project",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("created_time", Double, nullable=False),
    UniqueConstraint("name"),
)

run = Table(
    "run",
    metadata,
    Column("pk", BigId, primary_key=True),
    Column("id", String(32), nullable=False),
    Column("project_id", Integer, ForeignKey("project.id", ondelete="RESTRICT"), nullable=False),
    Column("name", String(500)),
    Column("owner", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", Double, nullable=False),
    Column("end_time", Double),
    Column("heartbeat_time", Double),
    Column("heartbeat_interval", Double),
    Column("question", Text),
    Column("notes", Text),
    Column("conclusion", Text),
    Column("failure", Text),
    Column("fingerprint", String(64)),
    Column("code_state", String(16)),
    Column("git_commit", String(64)),
    Column("git_branch", String(500)),
    Column("git_remote", Text),
    Column("git_dirty", Boolean),
    Column("git_diff_sha256", String(64)),
    Column("command", Text),
    Column("entry_point", Text),
    Column("cwd", Text),
    Column("hostname", String(255)),
    Column("hardware", JSON),
    Column("environment", JSON),
    Column("code", JSON),
    Column("warnings", JSON),
    Column("mlflow_run_id", String(64)),
    # For "has this been tried?": the architecture family and a digest of the data versions.
    Column("model_family", String(100)),
    Column("data_key", String(64)),
    # Runs that differ only in their seeds share it (``store.groups``): settings tag + digest.
    Column("group_key", String(72)),
    # The run this one is nested in (MLflow's parent run): its id, kept even when the parent
    # is not in this store (an import or sync of the children alone).
    Column("parent_id", String(64)),
    UniqueConstraint("id"),
    _enum_check("status", RUN_STATUSES, "status"),
)
# "runs of a project, newest first": the default listing and the dashboard's project views.
Index(None, run.c.project_id, run.c.start_time)
# "runs by someone" and the owner facet.
Index(None, run.c.owner, run.c.start_time)
# "running runs" (heartbeat sweeps) and the status facet.
Index(None, run.c.status)
# "has this exact experiment been run?" lookups.
Index(None, run.c.fingerprint)
# "runs at this commit".
Index(None, run.c.git_commit)
# Newest runs across projects: the default order of `cairn runs list` and of search.
Index(None, run.c.start_time)
# Run references by name (`cairn runs show r18-baseline`) and the name filter.
Index(None, run.c.name)
# Similarity candidates, newest first: "runs on the same data", "runs of the same family".
Index(None, run.c.data_key, run.c.start_time)
Index(None, run.c.model_family, run.c.start_time)
# Groups of seeds, read in this order: "the runs of this group", group ids by prefix, keys made
# under old settings; covering for the members of every group by status and newest start.
Index(None, run.c.group_key, run.c.project_id, run.c.status, run.c.start_time)
# "the children of this run" (`runs show`, search `parent = RUN`).
Index(None, run.c.parent_id)

param = Table(
    "param",
    metadata,
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("vtype", String(8), nullable=False),
    Column("value_text", Text),
    Column("value_num", Double),
    PrimaryKeyConstraint("run_pk", "key"),
    _enum_check("vtype", PARAM_TYPES, "vtype"),
    # Clustered by run on SQLite: "all params of these runs" reads contiguous rows.
    sqlite_with_rowid=False,
)
# Range and equality filters on numeric params: "params.lr < 1e-3". run_pk makes it covering:
# the filter's run list comes from the index alone, with no table lookups.
Index(None, param.c.key, param.c.value_num, param.c.run_pk)

tag = Table(
    "tag",
    metadata,
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_pk", "key"),
    sqlite_with_rowid=False,
)
# "runs tagged key=value" filters (covering, like the param index).
Index(None, tag.c.key, tag.c.value, tag.c.run_pk)

# Metric history, many points per row (see ``_chunks``): packed steps, values and times.
metric_chunk = Table(
    "metric_chunk",
    metadata,
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("min_step", BigInteger, nullable=False),
    Column("max_step", BigInteger, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("values", LargeBinary, nullable=False),
    Column("times", LargeBinary, nullable=False),
    # The primary key serves "a metric's history in order" (curves, compare, export) and
    # covers the run_pk foreign key; it grows per chunk, not per value logged.
    PrimaryKeyConstraint("run_pk", "key", "seq"),
)

metric_summary = Table(
    "metric_summary",
    metadata,
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="CASCADE"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("last", Double),
    Column("last_nonfinite", String(4)),
    Column("last_step", BigInteger, nullable=False),
    Column("last_time", Double, nullable=False),
    Column("min", Double),
    Column("max", Double),
    Column("count", BigInteger, nullable=False),
    Column("nonfinite_count", BigInteger, nullable=False),
    PrimaryKeyConstraint("run_pk", "key"),
    sqlite_with_rowid=False,
)
# Filter and sort runs by a metric: "val_acc >= 0.9 order by val_acc" (covering).
Index(None, metric_summary.c.key, metric_summary.c.last, metric_summary.c.run_pk)

dataset = Table(
    "dataset",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("path", Text, nullable=False),
    Column("hash", String(80)),
    Column("hash_kind", String(16)),
    Column("size", BigInteger),
    Column("nfiles", BigInteger),
    Column("remote", Text),
    Column("source", Text),
)
# One row per (path, version), the get-or-create target; "which runs used this exact data?"
# starts here. Untracked data has no hash: NULLs never conflict, so each use gets its own row.
Index(None, dataset.c.hash, dataset.c.path, unique=True)

run_dataset = Table(
    "run_dataset",
    metadata,
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="CASCADE"), nullable=False),
    Column("dataset_id", BigId, ForeignKey("dataset.id", ondelete="RESTRICT"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("tracked", Boolean, nullable=False),
    Column("dirty", Boolean),
    Column("dirty_check", String(16)),
    Column("pushed", Boolean),  # in the DVC remote when the run used it; NULL: unknown
    PrimaryKeyConstraint("run_pk", "dataset_id", "role"),
)
# "runs that used this dataset" (data.train = <hash>), and the dataset_id FK.
Index(None, run_dataset.c.dataset_id)

artifact = Table(
    "artifact",
    metadata,
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="CASCADE"), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("uri", Text, nullable=False),
    Column("created_time", Double, nullable=False),
    PrimaryKeyConstraint("run_pk", "name"),
)
# "which runs produced this file?" and garbage collection of unreferenced blobs.
Index(None, artifact.c.sha256)

mov_definition = Table(
    "mov_definition",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("project.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("unit", String(50), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("baseline", Double, nullable=False),
    Column("target", Double, nullable=False),
    Column("stakeholder", String(200)),
    Column("description", Text),
    Column("created_time", Double, nullable=False),
    # Also serves "the definitions of a project" and covers the project_id foreign key.
    UniqueConstraint("project_id", "name"),
    _enum_check("direction", ("higher", "lower"), "direction"),
)

mov_measurement = Table(
    "mov_measurement",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("definition_id", Integer, ForeignKey("mov_definition.id", ondelete="CASCADE"),
           nullable=False),
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="SET NULL")),
    Column("value", Double, nullable=False),
    Column("evidence", Text),
    Column("who", String(200), nullable=False),
    Column("time", Double, nullable=False),
)
# "progress of a MoV over time" (mov status, the dashboard's charts); covers definition_id.
Index(None, mov_measurement.c.definition_id, mov_measurement.c.time)
# "MoV measured by this run"; covers the run_pk foreign key.
Index(None, mov_measurement.c.run_pk)

# Model cards indexed from the catalog directory (the files stay the source of truth; these
# rows are derived and rebuilt by ``cairn catalog index``). One row per (name, version).
model_card = Table(
    "model_card",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", String(50), nullable=False),
    Column("status", String(16), nullable=False),
    Column("project", String(200)),
    Column("owner", String(200)),
    Column("backbone", String(300)),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("front_matter", JSON, nullable=False),
    Column("body", Text, nullable=False),
    Column("indexed_time", Double, nullable=False),
    # Also serves "versions of a card by name" (`cairn catalog show NAME`).
    UniqueConstraint("name", "version"),
    _enum_check("status", ("draft", "reviewed", "deprecated"), "status"),
)
# The catalog page's project facet: "cards of this project".
Index(None, model_card.c.project, model_card.c.name)

# Which MLflow run a registry run is mirrored to (export) or came from (import), per
# tracking URI; ``digest`` says whether the run changed since it was last exported.
mlflow_link = Table(
    "mlflow_link",
    metadata,
    Column("run_pk", BigId, ForeignKey("run.pk", ondelete="CASCADE"), nullable=False),
    Column("tracking_uri", String(1000), nullable=False),
    Column("mlflow_run_id", String(64), nullable=False),
    Column("experiment_id", String(64), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("digest", String(64)),
    Column("synced_time", Double, nullable=False),
    # Serves "the MLflow run of this registry run" and covers the run_pk foreign key.
    PrimaryKeyConstraint("run_pk", "tracking_uri"),
    # "Was this MLflow run already imported or exported?": import and export idempotency.
    UniqueConstraint("tracking_uri", "mlflow_run_id"),
    _enum_check("direction", ("export", "import"), "direction"),
)

# Free-text search lives outside this metadata, per dialect (migration 0002): SQLite has an
# FTS5 table ``run_fts(document)`` keyed by rowid = run.pk; PostgreSQL has ``run_text`` with a
# generated ``tsvector`` column under a GIN index. ``_text.py`` keeps both up to date.
# Cards have the same pair from migration 0003: ``card_fts`` (rowid = model_card.id) and
# ``card_text`` (card_id, document, tsv).
TEXT_INDEX_TABLES = ("run_fts", "run_text", "card_fts", "card_text")
