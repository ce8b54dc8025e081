"""`train_and_evaluate(config, workdir)`: the training loop of every method, resumable exactly.
The method (`config.method`, see wsrtl_jax.methods) gives the state, the step and the inputs; the
loop logs, evaluates and checkpoints."""
from __future__ import annotations

import itertools
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from data_pipeline.errors import UserError
from data_pipeline.progress import Progress
from wsrtl_jax import (checkpointing, config_checks, face_geometry, losses, methods, parallel,
                       plots, pretrained, train_state)
from wsrtl_jax.evaluate import (best_candidate, candidate_states, evaluate_checkpoint,
                                make_predict_fn, score_candidates)
from wsrtl_jax.experiment import data_source, setup
from wsrtl_jax.logging_utils import MetricsLog
from wsrtl_jax.preemption import PreemptionWatch
from wsrtl_jax.workdir_lock import WorkdirLock


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def config_changes(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
  """The keys in which `config` differs from the run recorded in `workdir/config.json`, each as
  `key (old -> new)`; none for a new workdir. UserError if that file is not readable JSON."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    return []
  try:
    with open(path) as f:
      old = _flatten(json.load(f))
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise UserError(f"'{path}' cannot be read ({e}); restore it, or remove it to record this "
                    "run's config anew") from None
  new = _flatten(json.loads(config.to_json_best_effort()))
  return [f"{k} ({old.get(k)!r} -> {new.get(k)!r})"
          for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes the resolved config to `workdir/config.json`; fails in one line if it cannot."""
  try:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  except OSError as e:
    raise UserError(f"cannot write to workdir '{workdir}': {e.strerror or e}") from e


def _au_weights(labels: np.ndarray) -> np.ndarray:
  """Inverse positive rates over every host's training labels."""
  counts = np.stack([(labels == 1).sum(0), (labels >= 0).sum(0)]).astype(np.int64)
  gathered = np.asarray(multihost_utils.process_allgather(counts))
  positives, known = gathered.reshape(-1, *counts.shape).sum(0)
  return losses.inverse_positive_rate_weights(positives, known)


def _checkpoint(method: methods.Method, step: int, state, writer: checkpointing.CheckpointWriter,
                validate, val_log, progress: Progress, is_chief: bool) -> None:
  """Starts saving `state` at `step`; for a method with labels, after scoring it on validation
  (the score picks the checkpoint that is evaluated on the test fold). The writer reports the
  save once it has committed."""
  if not method.has_labels:
    writer.save(step, state)  # No labels: the latest checkpoint is the one.
    return
  scores = validate(state)
  best = best_candidate(scores)
  val = scores[best]
  record = {"val_avg_f1": val["avg_f1"], "val_auc": val["auc"]}
  if len(scores) > 1:
    record.update({f"val_{name}_avg_f1": s["avg_f1"] for name, s in scores.items()})
  val_log.write(step, record)
  if is_chief:
    of = f" ({best})" if len(scores) > 1 else ""
    progress.print(f"step {step}: validation avg F1 {100 * val['avg_f1']:.1f}{of}")
  writer.save(step, state, val["avg_f1"])


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
  """Trains (resuming from `workdir` if it holds checkpoints), then, for a method with labels,
  evaluates the checkpoint that scored best on validation on the test fold and writes
  `eval.json`. Returns None when SIGTERM stopped the run (after saving a checkpoint to resume
  from).

  Nothing is written to `workdir` until the config's values, data and model are checked, the
  checkpoint to resume from has restored and the first batch is read; the run holds the
  workdir's lock throughout. SIGTERM at any time, start-up included, stops it at a step
  boundary."""
  preemption = PreemptionWatch(check_every=config.log_every)
  config_checks.check_ranges(config)
  if config.model.get("init_from"):
    pretrained.check_padding(config, config.model.init_from)
  context = setup(config)
  if methods.get_method(config).has_labels:
    candidate_states(config, context[-1])  # A bad eval.model fails before anything is written.
  created = not os.path.exists(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot write to workdir '{workdir}': {e.strerror or e}") from e
  lock = WorkdirLock(workdir).acquire() if jax.process_index() == 0 else None
  try:
    return _train(config, workdir, context, preemption)
  finally:
    if lock:
      lock.release()
    if created and os.path.isdir(workdir) and not os.listdir(workdir):
      os.rmdir(workdir)  # A refused run leaves no empty workdir behind.


def _train(config: ml_collections.ConfigDict, workdir: str, context,
           preemption: PreemptionWatch) -> dict | None:
  mesh, builder, splits, model, optimizer, state = context
  method, data = methods.get_method(config), data_source(config)
  is_chief = jax.process_index() == 0

  # A resumed run may change keys (e.g. more steps), but it is then no longer an exact resume.
  changes = config_changes(workdir, config) if is_chief else []
  if changes:
    print(f"warning: config differs from {workdir}/config.json in: {', '.join(changes)}",
          flush=True)
  manager = checkpointing.checkpoint_manager(workdir, config.keep_checkpoints, method.has_labels)
  try:
    state, start = checkpointing.restore_latest(manager, state)
  except checkpointing.NetworkMismatch as e:
    if not changes:
      raise
    raise UserError(f"{workdir} holds a run of another network than this config builds; it "
                    f"differs from that run's config in {', '.join(changes)}: resume with the "
                    "run's own values, or train into another --workdir") from e
  if start:
    print(f"Resumed from {workdir}/checkpoints step {start}.", flush=True)
  elif config.model.get("init_from"):
    state = parallel.replicate(
        pretrained.with_backbone_of(jax.device_get(state), config.model.init_from, config),
        mesh)

  au_weights = (jnp.asarray(_au_weights(data.training_labels(config, builder, splits)))
                if method.has_labels else None)
  schedule = train_state.learning_rate_schedule(config)
  train_step = parallel.shard_step(
      method.make_step(config, model, optimizer, schedule, au_weights), mesh)
  predict = make_predict_fn(model, config.data.image_size)
  validate = lambda s: score_candidates(predict, s, config, builder, splits, "validation", mesh)
  batches = parallel.prefetch_to_mesh(
      method.train_inputs(config, data, builder, splits, mesh, start), mesh,
      config.data.prefetch_to_device)
  batches = itertools.chain([next(batches)], batches)  # A data error stops the run here.
  if is_chief:
    write_config(workdir, config)
    face_geometry.write(workdir, splits)
  log = MetricsLog(workdir, "metrics.jsonl", start, enabled=is_chief)
  val_log = MetricsLog(workdir, "validation.jsonl", start, enabled=is_chief)

  total = config.num_train_steps
  progress = Progress(total, start, enabled=is_chief)
  writer = checkpointing.CheckpointWriter(
      manager, start, progress.print if is_chief else lambda line: None)
  window_start, window_steps = time.time(), 0
  for step in range(start + 1, total + 1):
    state, metrics = train_step(state, next(batches))
    window_steps += 1
    if step % config.log_every == 0 or step == total:
      metrics = jax.device_get(metrics)
      metrics["images_per_sec"] = (method.images_per_step(config) * window_steps
                                   / (time.time() - window_start))
      log.write(step, metrics)
      if is_chief and not progress.tty:
        progress.print(progress.line(step, f"loss {metrics['loss']:.4f} "
                                     f"lr {metrics['learning_rate']:.2e} "
                                     f"{metrics['images_per_sec']:.1f} img/s"))
      window_start, window_steps = time.time(), 0
      writer.poll()
    progress.update(step, f"loss {float(metrics['loss']):.4f}" if step % config.log_every == 0
                    else "")
    if step % config.checkpoint_every == 0 or step == total:
      _checkpoint(method, step, state, writer, validate, val_log, progress, is_chief)
      window_start, window_steps = time.time(), 0
    elif step < total and preemption.should_stop(step):
      writer.save(step, state)
      writer.wait()
      progress.print(f"Stopped by SIGTERM at step {step}; checkpoint saved. Run the same "
                     "command again to resume.")
      return None
  progress.close()
  writer.wait()
  if is_chief:
    plots.plot_training_curves(workdir)
    method.write_samples(config, data, builder, splits, model, state, workdir)
  if not method.has_labels:
    progress.print(f"Pretrained {total} steps. Evaluate the representation with: python -m "
                   f"wsrtl_jax linear_eval --workdir {workdir} --config CONFIG")
    return {"step": total}
  return evaluate_checkpoint(config, workdir, "test", (mesh, builder, splits, model, state),
                             manager)
