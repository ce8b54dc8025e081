"""Evaluation: a model's outputs over a whole split gathered from every host, its AU metrics,
and the checkpoint chosen on validation scored on the test fold (`eval.json`)."""
from __future__ import annotations

import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from data_pipeline import augment_params
from data_pipeline.au_sets import CENTRE_AUS
from data_pipeline.errors import UserError
from wsrtl_jax import (checkpointing, image_ops, logging_utils, methods, metrics, parallel,
                       plots)
from wsrtl_jax.experiment import data_source, setup
from wsrtl_jax.train_state import TrainState


def make_predict_fn(model, image_size: int, output: Callable = jax.nn.sigmoid,
                    method: Callable | None = None) -> Callable:
  """Jitted `output` of the model's `method` (default `__call__`: AU probabilities; frozen
  features for linear evaluation) for the host's centre crops and their AU centres, sharded
  over `data` (BatchNorm in inference mode)."""

  @jax.jit
  def predict(state: TrainState, images: jnp.ndarray, au_centres: jnp.ndarray) -> jnp.ndarray:
    b = images.shape[0]
    images = image_ops.finish_images(images, jnp.zeros(b, bool),
                                     jnp.tile(jnp.array([0.0, 1.0, 1.0]), (b, 1)), image_size)
    outputs = model.apply({"params": state.params, "batch_stats": state.batch_stats}, images,
                          au_centres, train=False, method=method)
    return output(outputs)

  return predict


def gather_split(fn, state, config, builder, splits, which: str, mesh,
                 labelled_only: bool = False) -> dict[str, np.ndarray]:
  """`fn(state, images, au_centres)` over the whole `which` split (see
  input_pipeline.eval_batches), gathered from every host with each frame's `label`, `identity`
  and `sequence_id`: {"output", "label", "identity", "sequence_id"}."""
  local = -(-config.eval.batch_size // mesh.size) * mesh.size // jax.process_count()
  crop = augment_params.crop_size(splits.frame_size, config.data)
  padding = {"image": np.zeros((local, crop, crop, 3), np.uint8),
             "au_centres": np.zeros((local, len(CENTRE_AUS), 2, 2), np.float32),
             "label": np.zeros((local, len(splits.aus)), np.int32),
             "identity": np.zeros((local,), np.int32),
             "sequence_id": np.zeros((local,), np.int32),
             "mask": np.zeros((local,), np.int32)}
  kept = {"output": [], "label": [], "identity": [], "sequence_id": []}
  batches = data_source(config).eval_batches(config, builder, splits, which, local,
                                             labelled_only)
  for batch in parallel.in_lockstep(batches, padding):
    g = parallel.to_global_batch({k: batch[k] for k in padding}, mesh)
    out = multihost_utils.process_allgather(
        {"output": fn(state, g["image"], g["au_centres"]),
         **{k: g[k] for k in ("label", "identity", "sequence_id", "mask")}}, tiled=True)
    keep = np.asarray(out["mask"]) == 1
    for key, values in kept.items():
      values.append(np.asarray(out[key])[keep])
  return {key: np.concatenate(values) for key, values in kept.items()}


def evaluate_split(predict, state, config, builder, splits, which: str, mesh) -> dict:
  """AU metrics of `state` on the whole `which` split, gathered from every host."""
  frames = gather_split(predict, state, config, builder, splits, which, mesh)
  result = metrics.au_metrics(frames["output"], frames["label"], splits.aus,
                              config.eval.threshold)
  result["chance_all_positive"] = metrics.all_positive_f1(frames["label"],
                                                          splits.aus)["per_au_f1"]
  return result


EVAL_MODELS = ("student", "teacher", "best")  # eval.model


def candidate_states(config: ml_collections.ConfigDict, state: TrainState
                     ) -> dict[str, TrainState]:
  """The networks `eval.model` scores: the student (`state`), the mean teacher (the state with
  the teacher's variables), or both for `best`, which picks the better on validation. `best`
  of a run without a teacher is its student; `teacher` there is a UserError."""
  choice = config.eval.get("model", "student")
  if choice not in EVAL_MODELS:
    raise UserError(f"eval.model={choice!r}; choose one of {', '.join(map(repr, EVAL_MODELS))}")
  if choice == "student" or (choice == "best" and state.teacher is None):
    return {"student": state}
  if state.teacher is None:
    raise UserError(f"eval.model='teacher', but this run (method {config.get('method')!r}) "
                    "keeps no mean teacher (WSRTL keeps one where wsrtl.semi.weight > 0); use "
                    "eval.model='student' or 'best'")
  teacher = state.replace(params=state.teacher["params"],
                          batch_stats=state.teacher["batch_stats"])
  return {"teacher": teacher} if choice == "teacher" else {"student": state, "teacher": teacher}


def score_candidates(predict, state: TrainState, config, builder, splits, which: str, mesh
                     ) -> dict[str, dict]:
  """evaluate_split of each of candidate_states, by name."""
  return {name: evaluate_split(predict, s, config, builder, splits, which, mesh)
          for name, s in candidate_states(config, state).items()}


def best_candidate(scores: dict[str, dict]) -> str:
  """The name of the best-scoring candidate (average F1; the student on a tie)."""
  return max(scores, key=lambda name: (scores[name]["avg_f1"], name == "student"))


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, which: str = "test",
                        context=None, manager=None, step: int | None = None) -> dict:
  """Evaluates the best-on-validation checkpoint (or `step`) on `which`; writes the JSON and
  prints the paper-style table."""
  if context is None:
    mesh, builder, splits, model, _, state = setup(config)
  else:
    mesh, builder, splits, model, state = context
  name = "eval.json" if which == "test" else f"eval_{which}.json"
  if jax.process_index() == 0:
    logging_utils.check_writable(os.path.join(workdir, name))
  manager = manager or checkpointing.checkpoint_manager(workdir, config.keep_checkpoints)
  chosen = step if step is not None else manager.best_step()
  if chosen is None:
    raise UserError(f"no checkpoint in '{workdir}/checkpoints'; train first")
  if chosen not in manager.all_steps():
    raise UserError(f"no checkpoint for step {chosen} in '{workdir}/checkpoints'; "
                    f"kept: {list(manager.all_steps())}")
  state = checkpointing.restore(manager, chosen, state)
  predict = make_predict_fn(model, config.data.image_size)
  candidates = candidate_states(config, state)
  if len(candidates) > 1:  # eval.model=best: the network chosen on validation, both reported.
    validation = score_candidates(predict, state, config, builder, splits, "validation", mesh)
    tested = score_candidates(predict, state, config, builder, splits, which, mesh)
    network = best_candidate(validation)
    result = dict(tested[network])
    result["networks"] = {name: {"val_avg_f1": validation[name]["avg_f1"],
                                 "avg_f1": tested[name]["avg_f1"], "auc": tested[name]["auc"]}
                          for name in candidates}
  else:
    network = next(iter(candidates))
    result = evaluate_split(predict, candidates[network], config, builder, splits, which, mesh)
  state = candidates[network]
  result["network"] = network
  result.update(methods.get_method(config).evaluate_extras(config, builder, splits, model, state,
                                                           which))
  result.update(step=int(chosen), split=which, dataset=config.data.name, fold=config.data.fold)
  if jax.process_index() == 0:
    logging_utils.write_atomic(os.path.join(workdir, name), json.dumps(result, indent=2))
    plots.plot_per_au_f1(result, os.path.join(workdir, name.replace(".json", "_per_au_f1.png")))
    print(f"\n{config.data.name} fold {config.data.fold}, {which} split "
          f"({result['num_frames']} frames), checkpoint step {chosen} (best on validation), "
          f"{network}:")
    print(metrics.format_f1_table(
        {f"ours ({config.model.backbone})": result["per_au_f1"],
         "all-positive (chance)": result["chance_all_positive"]}, splits.aus))
    print(f"avg F1 {100 * result['avg_f1']:.1f}  accuracy {100 * result['accuracy']:.1f}  "
          f"AUC {100 * result['auc']:.1f}  -> {os.path.join(workdir, name)}")
  return result
