"""SIGTERM (what TPU VMs and most schedulers send before preemption) -> stop at a step boundary.

`install` records SIGTERM from the moment the command starts, so a signal during start-up
(imports, data, compilation) also stops the run at its first step boundary."""
from __future__ import annotations

import signal
import threading

_requested = False


def _on_signal(signum, frame) -> None:
  global _requested
  del signum, frame
  _requested = True
  signal.signal(signal.SIGTERM, signal.SIG_DFL)  # A second SIGTERM ends the process at once.


def install() -> None:
  """Records SIGTERM from now on (from the main thread only; elsewhere it is a no-op)."""
  if threading.current_thread() is threading.main_thread() and (
      signal.getsignal(signal.SIGTERM) is not _on_signal and not _requested):
    signal.signal(signal.SIGTERM, _on_signal)


class PreemptionWatch:
  """Whether SIGTERM has come; `should_stop` tells every host the same answer at the same step.
  A second SIGTERM ends the process at once (for a run that never reaches its next step
  boundary)."""

  def __init__(self, check_every: int):
    self.check_every = check_every
    install()

  @property
  def requested(self) -> bool:
    return _requested

  def should_stop(self, step: int) -> bool:
    """One host answers at once; several agree every `check_every` steps (one tiny all-gather)."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils
    if jax.process_count() == 1:
      return self.requested
    if step % self.check_every:
      return False
    flags = multihost_utils.process_allgather(np.array(self.requested))
    return bool(np.asarray(flags).any())
