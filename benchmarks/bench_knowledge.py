"""Knowledge layer benchmark (issue 3): search, similar and compare on 100,000 runs; MLflow.

    .venv/bin/python benchmarks/bench_knowledge.py            # about 1 minute once cached
    .venv/bin/python benchmarks/bench_knowledge.py --quick    # 20,000 runs, 5 repetitions
    .venv/bin/python benchmarks/bench_knowledge.py --explain  # also prints the query plans
    CAIRN_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python benchmarks/bench_knowledge.py        # adds PostgreSQL: 10 minutes

The SQLite and MLflow stores come from ``benchmarks/generate.py`` and are cached under
``.cairn/bench/`` (the first run builds them: about 12 minutes, 8 of them MLflow's).
PostgreSQL gets a fresh schema each time, filled with 100,000 runs (about 8 minutes here;
``--pg-runs 20000`` takes 1.5) and dropped afterwards. Every figure is a
median over varied queries, the same values on every system. The MLflow anchor runs each query
in MLflow's closest syntax on the same generated runs (the first 10,000), against Cairn on
those same runs. Nothing here asserts on a timing: a missed target prints FAIL and the script
still exits 0. See benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _common import (
    MISSING,
    Row,
    fmt_time,
    load_average,
    machine_facts,
    median,
    postgres_schema,
    postgres_version,
    print_facts,
    print_table,
    progress,
    quiet_mlflow,
    step,
)
from _mlflow_store import mlflow_store
from _synthetic import (
    ARCHS,
    OWNERS,
    PROJECTS,
    dataset_versions,
)
from generate import cached_sqlite, generate

PACKAGES = ("cairn", "sqlalchemy", "mlflow", "psycopg")
PG_ENV = ("CAIRN_BENCH_POSTGRES_URL", "CAIRN_TEST_POSTGRES_URL")
CACHE = Path(__file__).resolve().parent.parent / ".cairn" / "bench"

SEARCH_TARGET_S = 0.050
SIMILAR_TARGET_S = 0.050
COMPARE_TARGET_S = 0.100
MLFLOW_TARGET = 20  # Cairn at least this many times faster than MLflow's search_runs


@dataclass(frozen=True)
class Plan:
    """How many runs each store holds and how many repetitions each measurement takes."""

    runs: int = 100_000
    anchor_runs: int = 10_000  # MLflow and the like-for-like Cairn store
    pg_runs: int = 100_000
    reps: int = 20
    warmups: int = 2
    compared: int = 10
    seed: int = 0
    history_points: int = 100

    @classmethod
    def quick(cls) -> Plan:
        return cls(runs=20_000, anchor_runs=2_000, pg_runs=5_000, reps=5, warmups=1)


# -- the queries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A realistic question, in Cairn's query language and in MLflow's closest equivalent.

    ``cairn`` and ``mlflow`` build (query, sort) and (filter, order_by, projects or None for
    all) from one set of values, so every system answers the same questions. A case with
    ``same_semantics`` asks both systems exactly the same thing."""

    key: str
    label: str
    cairn: Callable[[dict], tuple[str, str | None]]
    mlflow: Callable[[dict], tuple[str, list[str] | None, list[str] | None]]
    same_semantics: bool


def _family(arch: str) -> str:
    from registry._fingerprint import model_family

    return model_family({"model.arch": arch})


def _mlflow_text(v: dict) -> tuple[str, None, None]:
    """A in MLflow's terms: params are text (equality, not a range); no free text, so the
    augmentation param stands in for the word; the DVC hash is a tag, matched by prefix."""
    return (f"metrics.val_acc >= {v['acc']} and params.\"optimizer.lr\" = '{v['lr']!r}' and "
            f"tags.\"data.train\" LIKE '{v['prefix']}%' and "
            f"params.\"augment.policy\" = '{v['word']}'", None, None)


CASES = (
    Case("A", "filter + free text",
         lambda v: (f'val_acc >= {v["acc"]} and params.optimizer.lr < {v["lr"]:g} and '
                    f'data.train = {v["prefix"]} and "{v["word"]}"', None),
         _mlflow_text, same_semantics=False),
    Case("A'", "A as MLflow can ask it (lr equality, param for the word)",
         lambda v: (f'val_acc >= {v["acc"]} and params.optimizer.lr = {v["lr"]:g} and '
                    f'data.train = {v["prefix"]} and params.augment.policy = {v["word"]}', None),
         _mlflow_text, same_semantics=True),
    Case("B", "owner + status, sorted by a metric",
         lambda v: (f"owner = {v['owner']} and status = {v['status']}", "-val_acc"),
         lambda v: (f"attributes.user_id = '{v['owner']}' and "
                    f"attributes.status = '{v['status']}'", ["metrics.val_acc DESC"], None),
         same_semantics=True),
    Case("C", "project + tag + family + metric, sorted by it",
         lambda v: (f"project = {v['project']} and tags.stage = {v['stage']} and "
                    f"family = {_family(v['arch'])} and val_loss < {v['loss']}", "val_loss"),
         lambda v: (f"tags.stage = '{v['stage']}' and "
                    f"params.\"model.arch\" LIKE '{_family(v['arch'])}%' and "
                    f"metrics.val_loss < {v['loss']}", ["metrics.val_loss ASC"], [v["project"]]),
         same_semantics=True),
)

STORE_CASES = tuple(c for c in CASES if c.key != "A'")  # the mirror only matters beside MLflow


def query_values(count: int, seed: int) -> list[dict[str, Any]]:
    """Varied values for the queries (so caches do not make them trivial), fixed by the seed."""
    rng = random.Random(f"{seed}-queries")
    values = []
    for _ in range(count):
        project = rng.choice(list(PROJECTS))
        values.append({
            "acc": rng.choice((0.86, 0.87, 0.88, 0.89, 0.9)),
            "lr": rng.choice((3e-4, 5e-4, 1e-3, 2e-3)),
            "prefix": rng.choice(dataset_versions(project)["train"])[:8],
            "word": rng.choice(("mixup", "cutmix", "randaugment")),
            "owner": rng.choice(OWNERS),
            "status": rng.choice(("FINISHED", "FINISHED", "FAILED", "KILLED")),
            "project": project,
            "stage": rng.choice(("sweep", "ablation", "baseline")),
            "arch": rng.choice(list(ARCHS)),
            "loss": rng.choice((0.4, 0.5, 0.6)),
        })
    return values


# -- Cairn ------------------------------------------------------------------------------------


def _workspace(store_url: str):
    from registry.config import Workspace

    return Workspace(root=CACHE, store_url=store_url, artifact_root=str(CACHE / "artifacts"),
                     catalog_dir=CACHE / "catalog", owner="bench")


def _timed(call: Callable[[Any], Any], inputs: Sequence[Any], warmups: int
           ) -> tuple[list[float], list[Any]]:
    """Seconds per call after the warm-ups, and every call's result."""
    seconds, results = [], []
    for i, arg in enumerate(inputs):
        t0 = time.perf_counter()
        results.append(call(arg))
        if i >= warmups:
            seconds.append(time.perf_counter() - t0)
    return seconds, results


def bench_cairn(url: str, plan: Plan, cases: Sequence[Case], *, explain: bool = False,
                anchor: bool = False) -> dict[str, Any]:
    """Search cases, similar() and compare() against the store at ``url``, each through the
    public API (``registry.search``, ``registry.similar``, ``registry.compare``). Beside
    MLflow (``anchor``): the searches only, also with whole records, as MLflow returns."""
    from registry import compare, search, similar
    from registry.query import count, search_pks
    from registry.store import open_store

    ws, store = _workspace(url), open_store(url)
    values = query_values(plan.warmups + plan.reps, plan.seed)
    out: dict[str, Any] = {}
    for case in cases:
        queries = [case.cairn(v) for v in values]
        seconds, pages = _timed(lambda qs: search(qs[0], sort=qs[1], limit=20, workspace=ws),
                                queries, plan.warmups)
        with store.reading() as conn:
            matches = [count(conn, q) for q, _ in queries[plan.warmups:]]
        out[case.key] = {"median": median(seconds), "matches": median(matches),
                         "names": [[r.name for r in page.runs] for page in pages]}
        if explain:
            _explain(store, *queries[plan.warmups])
        if anchor and case.same_semantics:
            def whole(qs):
                with store.reading() as conn:
                    pks = search_pks(conn, qs[0], sort=qs[1], limit=20)
                return store.get_runs(pks)  # params, tags, data and artifacts too

            out[case.key]["whole"] = median(_timed(whole, queries, plan.warmups)[0])
    if not anchor:
        refs = _similar_refs(store, plan)
        seconds, found = _timed(lambda ref: similar(ref, workspace=ws), refs, plan.warmups)
        out["similar"] = {"median": median(seconds),
                          "found": median([len(f) for f in found[plan.warmups:]])}
        sets = _compare_sets(store, plan)
        seconds, done = _timed(lambda ids: compare(ids, workspace=ws), sets, plan.warmups)
        out["compare"] = {"median": median(seconds),
                          "steps": median([_steps(c) for c in done[plan.warmups:]])}
    return out


def _steps(comparison) -> int:
    """Steps on the common axis of the aligned val_acc histories."""
    history = comparison.histories.get("val_acc")
    return len(history.steps) if history else 0


def _similar_refs(store, plan: Plan) -> list[str]:
    """Run ids picked at random (the same on every system holding the same runs)."""
    from sqlalchemy import func, select

    from registry.store.schema import run

    with store.reading() as conn:
        n = conn.execute(select(func.max(run.c.pk))).scalar_one()
        pks = random.Random(f"{plan.seed}-similar").sample(range(1, n + 1),
                                                           plan.warmups + plan.reps)
        ids = dict(conn.execute(select(run.c.pk, run.c.id).where(run.c.pk.in_(pks))).all())
    return [ids[pk] for pk in pks]


def _compare_sets(store, plan: Plan) -> list[list[str]]:
    """Sets of runs someone would compare: same project, same data, picked among 200."""
    from sqlalchemy import func, select

    from registry.store.schema import run

    rng = random.Random(f"{plan.seed}-compare")
    sets = []
    with store.reading() as conn:
        n = conn.execute(select(func.max(run.c.pk))).scalar_one()
        for _ in range(plan.warmups + plan.reps):
            project_id, key = conn.execute(select(run.c.project_id, run.c.data_key).where(
                run.c.pk == rng.randrange(1, n + 1))).one()
            pool = conn.execute(select(run.c.id).where(
                run.c.project_id == project_id, run.c.data_key == key).order_by(run.c.pk)
                .limit(200)).scalars().all()
            sets.append(rng.sample(pool, plan.compared))
    return sets


def _explain(store, query: str, sort: str | None) -> None:
    """Print the plan of the SQL that ``search_pks`` runs for ``query``."""
    from sqlalchemy import event

    from registry.query import search_pks

    captured: list[tuple[str, Any]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        with store.reading() as conn:
            search_pks(conn, query, sort=sort, limit=21)
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)
    statement, parameters = captured[-1]
    sqlite = store.dialect == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    with store.reading() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    print(f"\n    plan ({store.dialect}) of {query!r} sort={sort!r}:")
    depth: dict[int, int] = {0: 0}
    for row in rows:
        if sqlite:
            node, parent, _, detail = row
            depth[node] = depth.get(parent, 0) + 1
            print("      " + "  " * depth[node] + detail)
        else:
            print("      " + row[0])


# -- MLflow -----------------------------------------------------------------------------------


def bench_mlflow(uri: str, plan: Plan, cases: Sequence[Case]) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    everywhere = [experiments[p] for p in PROJECTS]
    values = query_values(plan.warmups + plan.reps, plan.seed)
    out = {}
    for case in cases:
        def call(v, case=case):
            filter_string, order_by, projects = case.mlflow(v)
            ids = [experiments[p] for p in projects] if projects else everywhere
            return client.search_runs(ids, filter_string, max_results=20, order_by=order_by)

        seconds, pages = _timed(call, values, plan.warmups)
        out[case.key] = {"median": median(seconds),
                         "names": [[r.info.run_name for r in page] for page in pages]}
    return out


# -- the run ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    parser.add_argument("--pg-runs", type=int, help="runs to generate into PostgreSQL")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    if args.pg_runs:
        plan = replace(plan, pg_runs=args.pg_runs)
    pg_url = next((os.environ[v] for v in PG_ENV if os.environ.get(v)), None)

    print("Cairn knowledge layer benchmark (issue 3)" + (" --quick" if args.quick else ""))
    facts = machine_facts(PACKAGES)
    if pg_url:
        version = postgres_version(pg_url)
        facts.append(("PostgreSQL", version or "unreachable; not measured"))
        pg_url = pg_url if version else None
    print_facts(facts)

    started = time.perf_counter()
    results = _run_all(plan, pg_url, args.explain)
    print_table(_rows(results, plan), "Results (medians; ratio = how many times faster Cairn "
                                      "is than MLflow on the same runs)")
    _print_queries(plan)
    _print_agreement(results, plan)
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s; "
          f"load average now {load_average()}")
    return 0


def _run_all(plan: Plan, pg_url: str | None, explain: bool) -> dict[str, Any]:
    """Cairn first, MLflow last: importing MLflow must not slow the Cairn figures down."""
    results: dict[str, Any] = {}
    big = step(f"Cairn SQLite store, {plan.runs:,} runs", lambda: _cached(plan, plan.runs))
    small = step(f"Cairn SQLite store, {plan.anchor_runs:,} runs (MLflow's data set)",
                  lambda: _cached(plan, plan.anchor_runs))
    results["sqlite"] = step(f"Cairn on SQLite, {plan.runs:,} runs",
                              lambda: bench_cairn(big, plan, STORE_CASES, explain=explain))
    if pg_url:
        results["pg"] = step(f"Cairn on PostgreSQL, {plan.pg_runs:,} runs (generated now)",
                              lambda: _bench_pg(pg_url, plan, explain))
    results["small"] = step(f"Cairn on SQLite, {plan.anchor_runs:,} runs",
                             lambda: bench_cairn(small, plan, CASES, anchor=True))
    quiet_mlflow()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a benchmark reports nothing
    uri, reused, build_s = step(f"MLflow SQLite store, {plan.anchor_runs:,} runs",
                                 lambda: mlflow_store(CACHE, plan.anchor_runs, seed=plan.seed,
                                                      history_points=plan.history_points))
    print(f"    {'reused' if reused else f'built in {build_s:.0f} s'}: {uri}")
    results["mlflow"] = step("MLflow search_runs", lambda: bench_mlflow(uri, plan, CASES))
    return results


def _cached(plan: Plan, n: int) -> str:
    began = time.perf_counter()
    url, reused = cached_sqlite(CACHE, n, seed=plan.seed, history_points=plan.history_points,
                                progress=progress)
    path = Path(url.removeprefix("sqlite:///"))
    how = "reused" if reused else f"generated in {time.perf_counter() - began:.0f} s"
    print(f"\n    {how}: {path} ({path.stat().st_size / 2**30:.2f} GiB)", end="")
    return url


def _bench_pg(base_url: str, plan: Plan, explain: bool) -> dict[str, Any]:
    from registry.store import open_store

    with postgres_schema(base_url) as url:
        began = time.perf_counter()
        generate(url, plan.pg_runs, seed=plan.seed, history_points=plan.history_points,
                 progress=progress)
        generated = time.perf_counter() - began
        progress(f"    generated in {generated:.0f} s")
        try:
            result = bench_cairn(url, plan, STORE_CASES, explain=explain)
        finally:
            open_store(url).close()  # release the pool before the schema is dropped
    return result



# -- the table --------------------------------------------------------------------------------


def _ratio(anchor: float, cairn: float) -> str:
    ratio = anchor / cairn
    return f"{ratio:,.0f}x faster" if ratio >= 10 else f"{ratio:.2g}x faster"


def _store_rows(result: dict[str, Any], where: str) -> list[Row]:
    rows = []
    for case in STORE_CASES:
        r = result[case.key]
        rows.append(Row(f"{where}: search {case.key}, {case.label} ({r['matches']:,.0f} match)",
                        fmt_time(r["median"]), target=f"< {fmt_time(SEARCH_TARGET_S)}",
                        passed=r["median"] < SEARCH_TARGET_S))
    sim, cmp_ = result["similar"], result["compare"]
    rows.append(Row(f"{where}: `similar(run)`, random runs ({sim['found']:.0f} found)",
                    fmt_time(sim["median"]), target=f"< {fmt_time(SIMILAR_TARGET_S)}",
                    passed=sim["median"] < SIMILAR_TARGET_S))
    rows.append(Row(f"{where}: `compare` of 10 runs, histories aligned ({cmp_['steps']:,.0f} "
                    "steps)", fmt_time(cmp_["median"]), target=f"< {fmt_time(COMPARE_TARGET_S)}",
                    passed=cmp_["median"] < COMPARE_TARGET_S))
    return rows


def _rows(results: dict[str, Any], plan: Plan) -> list[Row]:
    rows = _store_rows(results["sqlite"], f"SQLite {plan.runs // 1000}k")
    if "pg" in results:
        rows += _store_rows(results["pg"], f"PostgreSQL {plan.pg_runs // 1000}k")
    small, mlflow = results["small"], results["mlflow"]
    for case in CASES:
        cairn, anchor = small[case.key]["median"], mlflow[case.key]["median"]
        semantics = "" if case.same_semantics else "; Cairn's semantics"
        rows.append(Row(
            f"SQLite {plan.anchor_runs // 1000}k: search {case.key}, {case.label} "
            f"({small[case.key]['matches']:,.0f} match{semantics})", fmt_time(cairn),
            f"MLflow `search_runs` {fmt_time(anchor)}", _ratio(anchor, cairn),
            f"≥ {MLFLOW_TARGET}x" if case.same_semantics else MISSING,
            anchor / cairn >= MLFLOW_TARGET if case.same_semantics else None))
    for case in CASES:
        if "whole" in small[case.key]:
            whole, anchor = small[case.key]["whole"], mlflow[case.key]["median"]
            rows.append(Row(f"SQLite {plan.anchor_runs // 1000}k: search {case.key} with whole "
                            "records (params, tags, data), as MLflow returns", fmt_time(whole),
                            f"MLflow `search_runs` {fmt_time(anchor)}", _ratio(anchor, whole)))
    return rows


def _print_queries(plan: Plan) -> None:
    """The cases with the values of the first timed repetition."""
    v = query_values(plan.warmups + 1, plan.seed)[-1]
    print("\nQueries (first page of 20; values vary per repetition, the same on every system):")
    for case in CASES:
        query, sort = case.cairn(v)
        filter_string, order_by, projects = case.mlflow(v)
        print(f"  {case.key:2} Cairn : {query}" + (f"   sort {sort}" if sort else ""))
        print(f"     MLflow: {filter_string}" + (f"   order_by {order_by}" if order_by else "")
              + (f"   in experiment {projects[0]}" if projects else ""))


def _print_agreement(results: dict[str, Any], plan: Plan) -> None:
    """Whether Cairn and MLflow returned the same first page (run names), query by query."""
    print(f"\nSame first page (run names) from Cairn and MLflow on {plan.anchor_runs:,} runs:")
    for case in CASES:
        mine = results["small"][case.key]["names"]
        theirs = results["mlflow"][case.key]["names"]
        same = sum(a == b for a, b in zip(mine, theirs, strict=True))
        note = "" if case.same_semantics else " (different questions: not expected to match)"
        print(f"  {case.key:2} {same} of {len(mine)} queries{note}")


if __name__ == "__main__":
    sys.exit(main())
