"""Groups of seeds: ``run.group_key``, the fingerprint with the seed params ignored too, after a
tag of the settings that made it (see ``registry.store.groups``); every existing run gets one
made with the default settings (seed params ``seed``, nothing else ignored). A workspace with
other settings rekeys its runs on first use of groups.

Revision ID: 0005
Revises: 0004
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 500
_run = sa.table("run", sa.column("pk"), sa.column("git_commit"), sa.column("git_diff_sha256"),
                sa.column("entry_point"), sa.column("group_key"))
_param = sa.table("param", sa.column("run_pk"), sa.column("key"), sa.column("vtype"),
                  sa.column("value_text"), sa.column("value_num"))
_use = sa.table("run_dataset", sa.column("run_pk"), sa.column("dataset_id"), sa.column("role"))
_dataset = sa.table("dataset", sa.column("id"), sa.column("hash"), sa.column("path"))


def upgrade() -> None:
    op.add_column("run", sa.Column("group_key", sa.String(72)))
    conn = op.get_bind()
    pks = conn.execute(sa.select(_run.c.pk).order_by(_run.c.pk)).scalars().all()
    for start in range(0, len(pks), _BATCH):
        rows = _keys(conn, pks[start:start + _BATCH])
        conn.execute(sa.update(_run).where(_run.c.pk == sa.bindparam("pk_"))
                     .values(group_key=sa.bindparam("key_")), rows)
    op.create_index("ix_run_group_key_project_id_status_start_time", "run",
                    ["group_key", "project_id", "status", "start_time"])


def _keys(conn, pks: list[int]) -> list[dict]:
    from registry._params import ParamValue
    from registry.store.groups import Keying, code_of

    params: dict[int, dict] = defaultdict(dict)
    for pk, key, vtype, text, number in conn.execute(sa.select(
            _param.c.run_pk, _param.c.key, _param.c.vtype, _param.c.value_text,
            _param.c.value_num).where(_param.c.run_pk.in_(pks))):
        params[pk][key] = ParamValue(vtype, text, number)
    data: dict[int, list] = defaultdict(list)
    for pk, role, digest, path in conn.execute(sa.select(
            _use.c.run_pk, _use.c.role, _dataset.c.hash, _dataset.c.path)
            .join(_dataset, _dataset.c.id == _use.c.dataset_id).where(_use.c.run_pk.in_(pks))):
        data[pk].append((role, digest, path))
    keying = Keying()
    runs = conn.execute(sa.select(_run.c.pk, _run.c.git_commit, _run.c.git_diff_sha256,
                                  _run.c.entry_point).where(_run.c.pk.in_(pks)))
    return [{"pk_": pk, "key_": keying.key(code_of(commit, diff, entry), params[pk], data[pk])}
            for pk, commit, diff, entry in runs]


def downgrade() -> None:
    op.drop_index("ix_run_group_key_project_id_status_start_time", "run")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("group_key")
