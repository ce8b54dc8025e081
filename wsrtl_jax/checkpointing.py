"""Orbax checkpoints: async, the latest N kept for resume, the best on validation kept too."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

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
  """Saves `state`; a step saved without a validation score (preemption) is never the best."""
  metrics = None if val_avg_f1 is None else {SELECTION_METRIC: float(val_avg_f1)}
  manager.save(step, args=ocp.args.StandardSave(_present(state)), metrics=metrics)


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
