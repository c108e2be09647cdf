"""System metrics of the other nodes of a distributed run.

Under ``torchrun`` on several nodes one process records the run (global rank 0), so its
sampler sees only its own node. :func:`sample_node` lets the first process of every other
node (``LOCAL_RANK`` 0) sample its host into the same run, under ``system/node<N>/``, through
a metric writer of its own; it writes only those keys, so it never contends with the
recording process for a metric. Its node's energy is recorded as ``energy.node<N>.gpu_kwh``
and ``energy.node<N>.cpu_kwh``, its warnings (an idle GPU) as the tag
``cairn.warning.node<N>``.

    node = registry.sample_node(run_id)     # None where nothing is to be sampled
    with node or contextlib.nullcontext():
        ...                                  # train; the node's last sample at the end
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from registry.capture.sampler import placement, start_sampler
from registry.config import Workspace, load_workspace
from registry.tracking._writer import MetricWriter

__all__ = ["NodeSampler", "sample_node"]

log = logging.getLogger("registry")


class NodeSampler:
    """This node's sampler writing into another process's run; :meth:`stop` ends it."""

    def __init__(self, store: Any, run_pk: int, node: int, workspace: Workspace,
                 env: Mapping[str, str] | None = None) -> None:
        self.node, self.warnings = node, []
        self._store, self._pk = store, run_pk
        # The recording process keeps the heartbeat; this writer only flushes.
        self._writer = MetricWriter(store, run_pk, flush_interval=workspace.flush_interval,
                                    heartbeat_interval=float("inf"), warn=self._warn,
                                    name=f"cairn-node{node}-writer")
        self._writer.start()
        self._sampler = start_sampler(self._emit, workspace.system_interval, warn=self._warn,
                                      env=env, name=f"cairn-node{node}-sampler")

    def __enter__(self) -> NodeSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Take the last sample, record this node's energy and warnings, flush. Never raises."""
        try:
            report = self._sampler.stop() if self._sampler is not None else None
            if report is not None:
                self._emit(_energy(report, self.node), 0)
                idle = report.idle_warning(logged_steps=True)
                if idle:
                    self._warn(idle)
            left = self._writer.close()
            if left:
                log.error("cairn: node %d: %d system metric chunks could not be stored",
                          self.node, len(left))
            if self.warnings:
                self._store.set_tags(self._pk, {f"cairn.warning.node{self.node}":
                                                "; ".join(self.warnings)})
        except Exception as exc:  # the node's metrics must never fail the training
            log.warning("cairn: node %d: system metrics not finished: %r", self.node, exc)

    def _emit(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            slot = self._writer.slot(key)
            slot.queue.append((step, float(value), time.time()))

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("cairn: node %d: %s", self.node, message)


def sample_node(run_id: str, *, workspace: Workspace | None = None,
                env: Mapping[str, str] | None = None) -> NodeSampler | None:
    """Sample this node into run ``run_id`` when this process is the first of a node other
    than the recording one's (see the module doc); None otherwise, or when sampling is off.
    Never raises: a node that cannot reach the store is logged and left out."""
    env = os.environ if env is None else env
    where = placement(env)
    if not where.sample or not where.node:
        return None  # node 0's sampler runs in the recording process
    try:
        ws = workspace or load_workspace()
        if not ws.system_interval > 0:
            return None
        store = ws.open_store()
        return NodeSampler(store, store.resolve(run_id), where.node, ws, env)
    except Exception as exc:
        log.warning("cairn: node %d: system metrics not recorded: %r", where.node, exc)
        return None


def _energy(report: Any, node: int) -> dict[str, float]:
    kinds = {"gpu_kwh": report.gpu_kwh, "cpu_kwh": report.cpu_kwh}
    return {f"energy.node{node}.{k}": v for k, v in kinds.items() if v is not None}
