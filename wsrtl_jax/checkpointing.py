"""Orbax checkpoints: async, the latest N kept for resume, the best on validation kept too."""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, BestN, LatestN

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
                               options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         val_avg_f1: float | None = None) -> None:
  """Saves `state`; a step saved without a validation score (preemption) is never the best."""
  metrics = None if val_avg_f1 is None else {SELECTION_METRIC: float(val_avg_f1)}
  manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)


def restore(manager: ocp.CheckpointManager, step: int, like: Any) -> Any:
  """Restores `step` with the shapes, dtypes and shardings of `like`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))
