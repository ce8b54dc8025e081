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
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options, item_handlers=ocp.StandardCheckpointHandler())


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


def restore(manager: ocp.CheckpointManager, step: int, like: Any) -> Any:
  """Restores `step` with the shapes, dtypes and shardings of `like` (a dataclass state). Parts
  the checkpoint holds as None (an earlier format) are asked for as None."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _present(like))
  on_disk = manager.item_metadata(step).tree
  abstract.update({k: None for k, v in on_disk.items() if v is None and k not in abstract})
  try:
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
  except ValueError as error:
    if "tree structures do not match" not in str(error):
      raise
    raise UserError(f"the checkpoint {manager.directory / str(step)} holds a different network "
                    "than its run's config builds now (written by an earlier release of a model "
                    "that has changed since?); pretrain or train it again with this release"
                    ) from None
  return like.replace(**{k: v for k, v in restored.items() if v is not None})
