"""Compares two runs: logged losses step by step and the parameters of their last checkpoints."""
from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from data_pipeline.errors import UserError
from wsrtl_jax.logging_utils import read_jsonl


def _latest_state(workdir: str) -> tuple[int, dict]:
  path = os.path.join(os.path.abspath(workdir), "checkpoints")
  with ocp.CheckpointManager(path, item_handlers=ocp.StandardCheckpointHandler(),
                             options=ocp.CheckpointManagerOptions(read_only=True)) as m:
    step = m.latest_step()
    if step is None:
      raise UserError(f"no checkpoint in '{path}'")
    # Restore onto one local device, whatever topology (hosts, devices) saved it.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda meta: jax.ShapeDtypeStruct(meta.shape, meta.dtype,
                                                            sharding=device),
                          m.item_metadata(step))
    return step, m.restore(step, args=ocp.args.StandardRestore(target))


def compare_runs(dir_a: str, dir_b: str) -> dict:
  """Max |difference| of the loss at every logged step, and of every parameter at the end."""
  for d in (dir_a, dir_b):
    if not os.path.isfile(os.path.join(d, "metrics.jsonl")):
      raise UserError(f"'{d}' is not a training workdir (it has no metrics.jsonl)")
  rows_a, rows_b = (read_jsonl(os.path.join(d, "metrics.jsonl")) for d in (dir_a, dir_b))
  loss_a = {r["step"]: r["loss"] for r in rows_a}
  loss_b = {r["step"]: r["loss"] for r in rows_b}
  if not loss_a or loss_a.keys() != loss_b.keys():
    raise UserError(f"'{dir_a}' and '{dir_b}' did not log the same steps")
  (step_a, state_a), (step_b, state_b) = _latest_state(dir_a), _latest_state(dir_b)
  shapes = lambda state: jax.tree.map(np.shape, state["params"])
  if shapes(state_a) != shapes(state_b):
    raise UserError(f"'{dir_a}' and '{dir_b}' train networks of different shapes; compare runs "
                    "of one config")
  diffs = jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))),
      state_a["params"], state_b["params"]))
  return {"steps_compared": len(loss_a),
          "max_abs_loss_diff": max(abs(loss_a[s] - loss_b[s]) for s in loss_a),
          "checkpoint_steps": [step_a, step_b], "max_abs_param_diff": max(diffs)}
