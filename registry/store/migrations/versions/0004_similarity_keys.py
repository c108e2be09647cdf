"""Similarity keys for runs recorded before 0002: ``run.model_family`` and ``run.data_key``,
derived from a run's params and data as a run's start derives them. Without them those runs
are missing from ``registry.similar``, the "has this been tried?" warning and ``family =``.

Revision ID: 0004
Revises: 0003
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 500
_run = sa.table("run", sa.column("pk"), sa.column("model_family"), sa.column("data_key"))
_param = sa.table("param", sa.column("run_pk"), sa.column("key"), sa.column("vtype"),
                  sa.column("value_text"))
_use = sa.table("run_dataset", sa.column("run_pk"), sa.column("dataset_id"))
_dataset = sa.table("dataset", sa.column("id"), sa.column("hash"))


def upgrade() -> None:
    conn = op.get_bind()
    pks = conn.execute(sa.select(_run.c.pk).where(
        _run.c.model_family.is_(None), _run.c.data_key.is_(None))).scalars().all()
    for start in range(0, len(pks), _BATCH):
        rows = _keys(conn, pks[start:start + _BATCH])
        if rows:
            conn.execute(sa.update(_run).where(_run.c.pk == sa.bindparam("pk_")).values(
                model_family=sa.bindparam("family"), data_key=sa.bindparam("data")), rows)


def _keys(conn, pks: list[int]) -> list[dict]:
    from registry._fingerprint import data_key, model_family

    params: dict[int, dict[str, str]] = defaultdict(dict)
    hashes: dict[int, list[str]] = defaultdict(list)
    text_params = sa.select(_param.c.run_pk, _param.c.key, _param.c.value_text).where(
        _param.c.run_pk.in_(pks), _param.c.vtype == "str")
    for pk, key, value in conn.execute(text_params):
        params[pk][key] = value
    used = sa.select(_use.c.run_pk, _dataset.c.hash).join(
        _dataset, _dataset.c.id == _use.c.dataset_id).where(_use.c.run_pk.in_(pks))
    for pk, digest in conn.execute(used):
        hashes[pk].append(digest)
    rows = [{"pk_": pk, "family": model_family(params[pk]), "data": data_key(hashes[pk])}
            for pk in pks]
    return [row for row in rows if row["family"] or row["data"]]


def downgrade() -> None:
    """The keys stay: they are what Cairn would have recorded."""
