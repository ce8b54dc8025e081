"""SIGTERM (what TPU VMs and most schedulers send before preemption) -> stop at a step boundary."""
from __future__ import annotations

import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils


class PreemptionWatch:
  """Records SIGTERM; `should_stop` tells every host the same answer at the same step. A second
  SIGTERM ends the process at once (for a run that never reaches its next step boundary)."""

  def __init__(self, check_every: int):
    self.requested = False
    self.check_every = check_every
    if threading.current_thread() is threading.main_thread():
      signal.signal(signal.SIGTERM, self._on_signal)

  def _on_signal(self, signum, frame) -> None:
    del signum, frame
    self.requested = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

  def should_stop(self, step: int) -> bool:
    """One host answers at once; several agree every `check_every` steps (one tiny all-gather)."""
    if jax.process_count() == 1:
      return self.requested
    if step % self.check_every:
      return False
    flags = multihost_utils.process_allgather(np.array(self.requested))
    return bool(np.asarray(flags).any())
