"""Orbax checkpoints: async, the latest N kept for resume, the best on validation kept too."""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, BestN, LatestN

from data_pipeline.errors import UserError

SELECTION_METRIC = "val_avg_f1"


def checkpoint_manager(workdir: str, keep_latest: int, scored: bool = True
                       ) -> ocp.CheckpointManager:
  """Manager over `workdir/checkpoints`; `scored` (runs with a validation score) also keeps the
  best on validation. Unfinished (e.g. killed mid-save) steps are ignored and their temporary
  folders removed."""
  score = lambda metrics: metrics[SELECTION_METRIC]
  keep = [LatestN(n=keep_latest)] + ([BestN(get_metric_fn=score, n=1)] if scored else [])
  # best_fn also makes orbax write the metrics with each step, so best_step() survives restarts.
  options = ocp.CheckpointManagerOptions(preservation_policy=AnyPreservationPolicy(keep),
                                         best_fn=score if scored else None, best_mode="max",
                                         cleanup_tmp_directories=True,
                                         enable_async_checkpointing=True)
  directory = os.path.join(os.path.abspath(workdir), "checkpoints")
  try:
    return ocp.CheckpointManager(directory, options=options,
                                 item_handlers=ocp.StandardCheckpointHandler())
  except Exception as error:  # E.g. a step's metrics file damaged: orbax reads them all here.
    raise UserError(f"cannot read the checkpoints in {directory} ({_reason(error)})") from None


def _present(state: Any) -> dict:
  """The state's fields that hold something: optional parts a method does not use (a teacher, a
  queue) are left out, so checkpoints of older releases, made before such a part existed,
  still restore."""
  return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
          if getattr(state, f.name) is not None}


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         val_avg_f1: float | None = None) -> None:
  """Starts saving `state`; a step saved without a validation score (preemption) is never the
  best."""
  metrics = None if val_avg_f1 is None else {SELECTION_METRIC: float(val_avg_f1)}
  manager.save(step, args=ocp.args.StandardSave(_present(state)), metrics=metrics)


class CheckpointWriteFailed(UserError):
  """A checkpoint that could not be written (full disk, no permission): the run stops."""


class CheckpointWriter:
  """Saves in the background and reports a step saved only once it has committed. A save that
  fails (full disk, a read-only workdir) stops the run at the next save or `wait` with one
  CheckpointWriteFailed naming the step's path, the OS error and the last committed step, the
  one a rerun resumes from."""

  def __init__(self, manager: ocp.CheckpointManager, committed_step: int,
               report: Callable[[str], None]):
    self.manager, self.committed_step, self._report = manager, committed_step, report
    self._pending: int | None = None
    _quiet_failed_writes()

  def save(self, step: int, state: Any, val_avg_f1: float | None = None) -> None:
    """Starts saving `state` at `step`, once the previous save has committed."""
    self.wait()
    self._pending = step
    try:
      save(self.manager, step, state, val_avg_f1)
    except Exception as error:  # Raised at once when the step's folder cannot be made.
      raise self._failed(error) from None

  def poll(self) -> None:
    """Reports the pending save if it has committed (or fails if it could not be written). On
    several hosts it waits for the next save instead: hosts must wait together."""
    if (self._pending is not None and jax.process_count() == 1
        and not self.manager.is_saving_in_progress()):
      self.wait()

  def wait(self) -> None:
    """Blocks until the pending save has committed, then reports it."""
    if self._pending is None:
      return
    try:
      self.manager.wait_until_finished()
    except Exception as error:  # Orbax and tensorstore raise many kinds for a failed write.
      raise self._failed(error) from None
    self.committed_step, self._pending = self._pending, None
    self._report(f"step {self.committed_step}: checkpoint saved")

  def _failed(self, error: Exception) -> CheckpointWriteFailed:
    path = self.manager.directory / str(self._pending)
    _FAILED.append(str(path))
    resume = (f"the last committed checkpoint is step {self.committed_step}"
              if self.committed_step else "no checkpoint has committed yet")
    return CheckpointWriteFailed(f"cannot write the checkpoint {path} ({_os_error(error)}); "
                                 f"{resume}: make room or fix the workdir, then rerun the same "
                                 "command to resume from it")


def _os_error(error: Exception) -> str:
  """The OS error behind a failed write: an OSError's, or the code tensorstore quotes."""
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  code = re.search(r"os_error_code='?(\d+)", str(error))
  return os.strerror(int(code.group(1))) if code else _reason(error)


class DamagedCheckpoint(UserError):
  """A checkpoint step whose files cannot be read back (truncated, partly deleted)."""


class NetworkMismatch(UserError):
  """A checkpoint of another network than the one asked to restore into."""


def restore(manager: ocp.CheckpointManager, step: int, like: Any) -> Any:
  """Restores `step` with the shapes, dtypes and shardings of `like` (a dataclass state). Parts
  the checkpoint holds as None (an earlier format) are asked for as None. A step whose files
  cannot be read is a DamagedCheckpoint naming it and why."""
  path = manager.directory / str(step)
  try:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _present(like))
    on_disk = manager.item_metadata(step).tree
    abstract.update({k: None for k, v in on_disk.items() if v is None and k not in abstract})
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
  except ValueError as error:
    if "tree structures do not match" not in str(error):
      raise DamagedCheckpoint(f"checkpoint {path} cannot be restored ({_reason(error)})") from None
    raise NetworkMismatch(f"the checkpoint {path} holds a different network than its run's config "
                    "builds now (written by an earlier release of a model that has changed "
                    "since?); pretrain or train it again with this release") from None
  except Exception as error:  # Orbax and tensorstore raise many kinds for damaged files.
    raise DamagedCheckpoint(f"checkpoint {path} cannot be restored ({_reason(error)})") from None
  return like.replace(**{k: v for k, v in restored.items() if v is not None})


def _reason(error: Exception) -> str:
  """The first line of an error, shortened: what a user needs to tell damage from a bug."""
  text = (str(error).strip().splitlines() or [""])[0]
  return f"{type(error).__name__}: {text[:160]}"


def restore_latest(manager: ocp.CheckpointManager, like: Any) -> tuple[Any, int]:
  """(state, step) of the newest checkpoint that restores, `(like, 0)` if there is none. Each
  newer step that cannot be read is named in one line and deleted, so the run saves that step
  again; if none restores, a UserError names them all."""
  steps = sorted(manager.all_steps(), reverse=True)
  damaged = []
  for step in steps:
    try:
      state = restore(manager, step, like)
    except DamagedCheckpoint as error:
      print(f"warning: {error}; trying the step before", flush=True)
      damaged.append(step)
      continue
    for bad in damaged:
      manager.delete(bad)
      print(f"warning: removed the damaged checkpoint step {bad}", flush=True)
    return state, step
  if steps:
    raise UserError(f"no checkpoint in {manager.directory} restores (steps {steps} are "
                    "damaged); remove that folder to train from the start")
  return like, 0


_FAILED: list[str] = []  # The paths of failed writes: their leftovers at exit are not reported.


class _FailedWriteFilter(logging.Filter):
  """Drops the errors that orbax's background threads log when a save fails: each is raised
  again in the main thread, where the writer reports it in one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
      text += logging.Formatter().formatException(record.exc_info)
    from_orbax = f"{os.sep}orbax{os.sep}" in record.pathname or "orbax" in text
    return not (record.levelno >= logging.ERROR and from_orbax)


def _quiet_unraisable(unraisable, previous=sys.unraisablehook) -> None:
  """Drops the leftovers of a failed save: after it, the errors of the orbax writes still pending
  at exit, and what tensorstore's callbacks raise once orbax has closed its event loop."""
  code = getattr(unraisable.object, "cr_code", None)
  pending_write = bool(_FAILED) and code is not None and "orbax" in code.co_filename
  closed_loop = (unraisable.exc_type is RuntimeError
                 and str(unraisable.exc_value) == "Event loop is closed")
  if not (pending_write or closed_loop):
    previous(unraisable)


def _quiet_failed_writes() -> None:
  """Keeps a failed save from printing pages of tracebacks from orbax's background threads; the
  writer reports it in one line. Installed once per process."""
  if sys.unraisablehook is _quiet_unraisable:
    return
  for name in ("absl", "asyncio"):
    logging.getLogger(name).addFilter(_FailedWriteFilter())
  sys.unraisablehook = _quiet_unraisable
