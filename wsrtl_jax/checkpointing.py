"""Orbax checkpoints: async, the latest N kept for resume, the best on validation kept too."""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, BestN, LatestN

SELECTION_METRIC = "val_avg_f1"


def checkpoint_manager(workdir: str, keep_latest: int) -> ocp.CheckpointManager:
  """Manager over `workdir/checkpoints`. Unfinished (e.g. killed mid-save) steps are ignored and
  their temporary folders removed."""
  policy = AnyPreservationPolicy([
      LatestN(n=keep_latest),
      BestN(get_metric_fn=lambda m: m[SELECTION_METRIC], reverse=False, n=1)])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, cleanup_tmp_directories=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any, val_avg_f1: float) -> None:
  manager.save(step, args=ocp.args.StandardSave(state),
               metrics={SELECTION_METRIC: float(val_avg_f1)})


def restore(manager: ocp.CheckpointManager, step: int, like: Any) -> Any:
  """Restores `step` with the shapes, dtypes and shardings of `like`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract))


def best_step(manager: ocp.CheckpointManager) -> int | None:
  """The kept step with the highest validation average F1 (the latest among ties)."""
  scored = [(manager.metrics(s) or {}).get(SELECTION_METRIC) for s in manager.all_steps()]
  candidates = [(score, s) for score, s in zip(scored, manager.all_steps()) if score is not None]
  return max(candidates)[1] if candidates else manager.latest_step()
