"""`train_and_evaluate(config, workdir)`: the supervised training loop, resumable exactly."""
from __future__ import annotations

import dataclasses
import json
import os
import time
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from data_pipeline import augment_params
from data_pipeline.au_sets import CENTRE_AUS
from wsrtl_jax import (checkpointing, clp_training, evaluation, image_ops, losses, methods,
                       models, parallel, plots, pretrained, training, wsrtl_training)
from data_pipeline.errors import UserError
from data_pipeline.progress import Progress
from wsrtl_jax.logging_utils import MetricsLog
from wsrtl_jax.preemption import PreemptionWatch


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Creates `workdir` and writes the resolved config; fails in one line if it cannot.

  A workdir that already holds a run with another config gets a warning naming the keys that
  changed: resuming with them is allowed (e.g. more steps) but no longer an exact resume.
  """
  path = os.path.join(workdir, "config.json")
  try:
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
      if os.path.isfile(path):
        with open(path) as f:
          old = _flatten(json.load(f))
        new = _flatten(json.loads(config.to_json_best_effort()))
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if changed:
          print(f"warning: config differs from {path} in: "
                + ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in changed),
                flush=True)
      with open(path, "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  except OSError as e:
    raise UserError(f"cannot write to workdir '{workdir}': {e.strerror or e}") from e


def _local_batch(b: int, name: str, mesh) -> int:
  """This host's share of the global batch `name` of `b` units; it must split evenly over
  devices and hosts."""
  n = mesh.size
  if b % n:
    raise UserError(f"{name}={b} does not split evenly over {n} devices")
  return b // jax.process_count()


_LABELLED_KEYS = ("image", "flip", "jitter", "label", "au_centres")
_PAIR_KEYS = ("image", "flip", "jitter", "au_centres", "landmarks")
_UNIT_KEYS = ("image", "flip", "jitter")


def data_source(config: ml_collections.ConfigDict) -> types.ModuleType:
  """The module that streams `config.data` (load_builder, fold_splits, train_stream): the tfds
  store through tf.data (`data.source="store"`), or SynthAU rendered by the generator without
  TensorFlow (`"generator"`, CLP pretraining only)."""
  source = config.data.get("source", "store")
  if source == "generator":
    from data_pipeline.synthau import generator_stream
    return generator_stream
  if source != "store":
    raise UserError(f"data.source={source!r}; choose 'store' or 'generator'")
  from data_pipeline import input_pipeline
  return input_pipeline


def training_inputs(config, builder, splits, mesh, start: int):
  """This host's training batches from step `start`: labelled frames, and for WSRTL also
  unlabelled frame pairs ({"labelled": ..., "pairs": ...}); for CLP, cross-identity units."""
  local = _local_batch(config.global_batch_size, "global_batch_size", mesh)
  if methods.is_pretraining(config):
    units = data_source(config).train_stream(config, builder, splits, "cross_identity", local,
                                             start)
    return ({k: u[k] for k in _UNIT_KEYS} for u in units)
  data = data_source(config)
  labelled = ({k: b[k] for k in _LABELLED_KEYS}
              for b in data.train_batches(config, builder, splits, local, start))
  if not methods.is_wsrtl(config):
    return labelled
  local_pairs = _local_batch(config.wsrtl.pairs_batch_size, "wsrtl.pairs_batch_size", mesh)
  pairs = data.train_stream(config, builder, splits, "pairs", local_pairs, start)
  keys = _PAIR_KEYS + (("flow",) if config.data.get("flow_cache") else ())
  return ({"labelled": lab, "pairs": {k: p[k] for k in keys}} for lab, p in zip(labelled, pairs))


def _au_weights(labels: np.ndarray) -> np.ndarray:
  """Inverse positive rates over every host's training labels."""
  counts = np.stack([(labels == 1).sum(0), (labels >= 0).sum(0)]).astype(np.int64)
  gathered = np.asarray(multihost_utils.process_allgather(counts))
  positives, known = gathered.reshape(-1, *counts.shape).sum(0)
  return losses.inverse_positive_rate_weights(positives, known)


def write_wsrtl_samples(config: ml_collections.ConfigDict, builder, splits, model, state,
                        workdir: str, num_frames: int = 6) -> str:
  """`workdir/wsrtl_samples.png`: masked inputs, reconstructions, target and predicted flow of
  the trained network on a few test-subject pairs."""
  test_pairs = dataclasses.replace(splits, train=splits.test)
  on_device = config.copy_and_resolve_references()
  on_device.data.flow_cache = ""  # Targets computed here: a cache covers training pairs only.
  pairs = next(data_source(config).train_stream(on_device, builder, test_pairs, "pairs",
                                                num_frames))
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  sample = wsrtl_training.make_sample_fn(model, config)
  out = jax.device_get(sample(variables, {k: pairs[k] for k in _PAIR_KEYS},
                              jax.random.key(config.seed)))
  title = (f"WSRTL on {config.data.name} test subjects after {config.num_train_steps} steps "
           f"(pairs t, t+{config.data.pair_gap}; flow at 1/4 resolution)")
  return plots.plot_wsrtl_samples(out, os.path.join(workdir, "wsrtl_samples.png"), title)


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


def write_cir_samples(config: ml_collections.ConfigDict, builder, splits, model, state,
                      workdir: str, num_pairs: int = 6) -> str:
  """`workdir/cir_samples.png`: pairs of test subjects, each face rebuilt from its own codes and
  from its AU code with the other person's identity code."""
  test = dataclasses.replace(splits, train=splits.test)
  units = next(data_source(config).train_stream(config, builder, test, "cross_identity",
                                                num_pairs))
  size = config.data.image_size
  anchors = units["image"][:, :, 0]  # [P, 2, C, C, 3]: each clip's first frame.
  faces = image_ops.finish_images(anchors.reshape(2 * num_pairs, *anchors.shape[2:]),
                                  units["flip"].reshape(-1), units["jitter"].reshape(-1, 3), size)
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  swap = clp_training.make_swap_fn(model)
  out = jax.device_get(swap(variables, faces.reshape(num_pairs, 2, size, size, 3)))
  title = (f"CLP cross-identity reconstruction, {config.data.name} test subjects, after "
           f"{config.num_train_steps} steps")
  return plots.plot_cir_samples(out, os.path.join(workdir, "cir_samples.png"), title)


def evaluate_split(predict, state, config, builder, splits, which: str, mesh) -> dict:
  """AU metrics of `state` on the whole `which` split, gathered from every host."""
  frames = gather_split(predict, state, config, builder, splits, which, mesh)
  result = evaluation.au_metrics(frames["output"], frames["label"], splits.aus,
                                 config.eval.threshold)
  result["chance_all_positive"] = evaluation.all_positive_f1(frames["label"],
                                                             splits.aus)["per_au_f1"]
  return result


def setup(config: ml_collections.ConfigDict):
  """Mesh, data, model and optimiser shared by training and evaluation."""
  models.check_model_config(config)
  methods.check_method(config)
  mesh = parallel.make_mesh(config.num_devices)
  data = data_source(config)
  builder = data.load_builder(config)
  splits = data.fold_splits(config, builder)
  model, optimizer, state = methods.create(config, num_aus=len(splits.aus))
  state = parallel.replicate(state, mesh)
  return mesh, builder, splits, model, optimizer, state


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
  """Trains (resuming from `workdir` if it holds checkpoints), then evaluates the checkpoint that
  scored best on validation on the test fold and writes `eval.json`. Returns None when SIGTERM
  stopped the run (after saving a checkpoint to resume from)."""
  prepare_workdir(workdir, config)
  mesh, builder, splits, model, optimizer, state = setup(config)
  is_chief = jax.process_index() == 0

  pretraining = methods.is_pretraining(config)
  au_weights = None if pretraining else jnp.asarray(_au_weights(
      data_source(config).training_labels(config, builder, splits)))
  schedule = training.learning_rate_schedule(config)
  train_step = parallel.shard_step(
      methods.make_step(config, model, optimizer, schedule, au_weights), mesh)
  predict = training.make_predict_fn(model, config.data.image_size)

  manager = checkpointing.checkpoint_manager(workdir, config.keep_checkpoints, not pretraining)
  start = manager.latest_step() or 0
  if start:
    state = checkpointing.restore(manager, start, state)
    print(f"Resumed from {workdir}/checkpoints step {start}.", flush=True)
  elif config.model.get("init_from"):
    state = parallel.replicate(
        pretrained.with_backbone_of(jax.device_get(state), config.model.init_from), mesh)
  log = MetricsLog(workdir, "metrics.jsonl", start, enabled=is_chief)
  val_log = MetricsLog(workdir, "validation.jsonl", start, enabled=is_chief)
  batches = parallel.prefetch_to_mesh(training_inputs(config, builder, splits, mesh, start),
                                     mesh, config.data.prefetch_to_device)

  total = config.num_train_steps
  preemption = PreemptionWatch(check_every=config.log_every)
  progress = Progress(total, start, enabled=is_chief)
  window_start, window_steps = time.time(), 0
  for step in range(start + 1, total + 1):
    state, metrics = train_step(state, next(batches))
    window_steps += 1
    if step % config.log_every == 0 or step == total:
      metrics = jax.device_get(metrics)
      metrics["images_per_sec"] = (methods.images_per_step(config) * window_steps
                                   / (time.time() - window_start))
      log.write(step, metrics)
      if is_chief and not progress.tty:
        progress.print(progress.line(step, f"loss {metrics['loss']:.4f} "
                                     f"lr {metrics['learning_rate']:.2e} "
                                     f"{metrics['images_per_sec']:.1f} img/s"))
      window_start, window_steps = time.time(), 0
    progress.update(step, f"loss {float(metrics['loss']):.4f}" if step % config.log_every == 0
                    else "")
    if (step % config.checkpoint_every == 0 or step == total) and pretraining:
      checkpointing.save(manager, step, state)  # No labels: the latest checkpoint is the one.
      progress.print(f"step {step}: checkpoint saved")
      window_start, window_steps = time.time(), 0
    elif step % config.checkpoint_every == 0 or step == total:
      val = evaluate_split(predict, state, config, builder, splits, "validation", mesh)
      val_log.write(step, {"val_avg_f1": val["avg_f1"], "val_auc": val["auc"]})
      checkpointing.save(manager, step, state, val["avg_f1"])
      if is_chief:
        progress.print(f"step {step}: validation avg F1 {100 * val['avg_f1']:.1f}, "
                       "checkpoint saved")
      window_start, window_steps = time.time(), 0
    elif step < total and preemption.should_stop(step):
      checkpointing.save(manager, step, state)
      manager.wait_until_finished()
      progress.print(f"Stopped by SIGTERM at step {step}; checkpoint saved. Run the same "
                     "command again to resume.")
      return None
  progress.close()
  manager.wait_until_finished()
  if is_chief:
    plots.plot_training_curves(workdir)
    if methods.is_wsrtl(config):
      write_wsrtl_samples(config, builder, splits, model, state, workdir)
    if pretraining:
      write_cir_samples(config, builder, splits, model, state, workdir)
  if pretraining:
    progress.print(f"Pretrained {total} steps. Evaluate the representation with: python -m "
                   f"wsrtl_jax linear_eval --workdir {workdir} --config CONFIG")
    return {"step": total}
  return evaluate_checkpoint(config, workdir, "test", (mesh, builder, splits, model, state),
                             manager)


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, which: str = "test",
                        context=None, manager=None, step: int | None = None) -> dict:
  """Evaluates the best-on-validation checkpoint (or `step`) on `which`; writes the JSON and
  prints the paper-style table."""
  if context is None:
    mesh, builder, splits, model, _, state = setup(config)
  else:
    mesh, builder, splits, model, state = context
  manager = manager or checkpointing.checkpoint_manager(workdir, config.keep_checkpoints)
  chosen = step if step is not None else manager.best_step()
  if chosen is None:
    raise UserError(f"no checkpoint in '{workdir}/checkpoints'; train first")
  if chosen not in manager.all_steps():
    raise UserError(f"no checkpoint for step {chosen} in '{workdir}/checkpoints'; "
                    f"kept: {list(manager.all_steps())}")
  state = checkpointing.restore(manager, chosen, state)
  predict = training.make_predict_fn(model, config.data.image_size)
  result = evaluate_split(predict, state, config, builder, splits, which, mesh)
  result.update(step=int(chosen), split=which, dataset=config.data.name, fold=config.data.fold)
  if jax.process_index() == 0:
    name = "eval.json" if which == "test" else f"eval_{which}.json"
    with open(os.path.join(workdir, name), "w") as f:
      json.dump(result, f, indent=2)
    plots.plot_per_au_f1(result, os.path.join(workdir, name.replace(".json", "_per_au_f1.png")))
    print(f"\n{config.data.name} fold {config.data.fold}, {which} split "
          f"({result['num_frames']} frames), checkpoint step {chosen} (best on validation):")
    print(evaluation.format_f1_table(
        {f"ours ({config.model.backbone})": result["per_au_f1"],
         "all-positive (chance)": result["chance_all_positive"]}, splits.aus))
    print(f"avg F1 {100 * result['avg_f1']:.1f}  accuracy {100 * result['accuracy']:.1f}  "
          f"AUC {100 * result['auc']:.1f}  -> {os.path.join(workdir, name)}")
  return result
