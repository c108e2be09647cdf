"""Recording runs: what a training script calls.

- ``start_run`` (:mod:`._start`) captures the run's context (code, data, hardware,
  environment, params) and hands back a :class:`~registry.tracking.run.Run`;
- the run's metrics leave the training loop through a background writer (``_writer``);
- what the store could not take is kept in a local spool and delivered later (:mod:`.spool`);
- the other nodes of a distributed run sample their hosts into it (:mod:`._node`);
- signals, exceptions and interpreter exit end the run with the right status (``_lifecycle``).
"""

from registry.tracking._node import sample_node as sample_node
from registry.tracking._start import active_run as active_run
from registry.tracking._start import start_run as start_run
from registry.tracking.run import Run as Run

__all__ = ["Run", "active_run", "sample_node", "start_run"]
