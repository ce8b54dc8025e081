"""The CLP method. Its per-device pretraining step (no labels): MoCo v2 InfoNCE against a queue of
momentum keys, temporal contrastive learning (TCL) within each clip, and cross-identity
reconstruction (CIR), each switched on by a weight above zero in `config.clp` (so that ablations
are config overrides; all three extra weights at 0 is plain MoCo v2 on the same frames).

A step takes cross-identity units [B, 2, T, ...]: two clips of T frames of two different people.
Every frame is a query (the student's AU code of the frame as streamed) whose positive key is the
momentum encoder's AU code of a second view of the same frame (a flip and colour jitter, and a crop
if `view.min_scale` < 1, drawn here once per clip, so all frames of a clip share it). TCL ranks the
similarity of each clip's first frame (the anchor, as its key) to the queries of the clip's frames:
each frame further away must be less similar by at least `margin` per frame of distance, so the
student learns what changes over time. CIR rebuilds every frame by moving the pixels of the next
frame of its clip (same person, the identity) from that frame's AU code to its own; and, across the
unit's two people, B's anchor moved to A's AU code, encoded again, must have A's AU code (the
cycle), and the other way round. The appearance comes from the identity face, so the AU code only
has to say how the face is set.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipeline.augment_params import jitter_bounds
from wsrtl_jax import image_ops, parallel, train_state
from wsrtl_jax.batch_ops import global_mean, global_value_and_grad, pool_to, uniform_rows
from wsrtl_jax.methods import Method, needs_section, supervised
from wsrtl_jax.models.resnet import normalize_image
from wsrtl_jax.models.wsrtl import denormalize
from wsrtl_jax.parallel import AXIS
from wsrtl_jax.train_state import TrainState

UNIT_KEYS = ("image", "flip", "jitter")


def _normalize(x: jnp.ndarray) -> jnp.ndarray:
  return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)


def initial_queue(config: ml_collections.ConfigDict) -> jnp.ndarray:
  """Random unit vectors [queue_size, code_dim], as MoCo starts."""
  shape = (config.clp.queue_size, config.model.code_dim)
  return _normalize(jax.random.normal(jax.random.key(config.seed + 1), shape))


def gather_rows(local: jnp.ndarray) -> jnp.ndarray:
  """Every device's rows [N, ...] -> the global batch [devices * N, ...] in device order, the
  same on every device (a psum of each device's rows placed at its offset, which the step's
  replicated outputs can hold, unlike an all_gather's)."""
  devices, n = jax.lax.psum(1, AXIS), local.shape[0]
  placed = jax.lax.dynamic_update_slice_in_dim(
      jnp.zeros((devices * n, *local.shape[1:]), local.dtype), local,
      jax.lax.axis_index(AXIS) * n, axis=0)
  return jax.lax.psum(placed, AXIS)


def second_view(images: jnp.ndarray, draw: jnp.ndarray, min_scale: float, jitter: float
                ) -> jnp.ndarray:
  """Another view of each image [N, S, S, 3] (0-255) from uniform draws [N, 7]: a square crop of
  side min_scale..1 of the image at a random place resized back to S, a flip with probability
  1/2, and colour jitter of strength `jitter`."""
  size = images.shape[1]
  side = min_scale + (1.0 - min_scale) * draw[:, 0]
  offset = draw[:, 1:3] * (1.0 - side)[:, None] * size  # [N, (x, y)]

  def crop(image, side, offset):
    scale = 1.0 / side
    return jax.image.scale_and_translate(
        image, image.shape, (0, 1), jnp.stack([scale, scale]), -offset[::-1] * scale,
        "linear", antialias=False)

  views = jax.vmap(crop)(images, side, offset)
  views = jnp.where((draw[:, 3] < 0.5)[:, None, None, None], views[:, :, ::-1], views)
  low, high = map(jnp.asarray, jitter_bounds(jitter))
  return image_ops.colour_jitter(views, low + (high - low) * draw[:, 4:7])


def other_person(rows: jnp.ndarray) -> jnp.ndarray:
  """Rows [2P, ...] of pairs of people (A, B, A, B, ...) -> each row's partner (B, A, B, A, ...)."""
  return rows.reshape(-1, 2, *rows.shape[1:])[:, ::-1].reshape(rows.shape)


def info_nce(queries: jnp.ndarray, keys: jnp.ndarray, queue: jnp.ndarray, temperature: float,
             group: int = 1) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Per-query InfoNCE loss [N] and whether the positive scored highest [N]; every vector unit
  length. The positive is the query's key; the negatives are the queue and the keys of the
  other rows of its group of `group` consecutive rows (the other frames of its clip, which differ
  from it only by what changed over time; group 1 is MoCo's queue alone)."""
  n, dim = queries.shape
  within = jnp.einsum("cid,cjd->cij", queries.reshape(n // group, group, dim),
                      keys.reshape(n // group, group, dim)).reshape(n, group)
  logits = jnp.concatenate([within, queries @ queue.T], axis=1) / temperature
  target = jnp.tile(jnp.arange(group), n // group)
  loss = -jnp.take_along_axis(jax.nn.log_softmax(logits), target[:, None], axis=1)[:, 0]
  return loss, jnp.argmax(logits, axis=1) == target


def temporal_margin(similarities: jnp.ndarray, margin: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """TCL's margin ranking over the anchor's similarities [C, T] to the frames of its clip (the
  anchor is frame 0): for each pair j < k, max(0, margin (k - j) - (s_j - s_k)). Returns the sum
  over pairs [C] and the share of pairs in the right order [C]."""
  t = similarities.shape[1]
  j, k = np.triu_indices(t, 1)
  gap = similarities[:, j] - similarities[:, k]
  violation = jax.nn.relu(margin * (k - j) - gap)
  return violation.sum(axis=1), jnp.mean(gap > 0, axis=1)


def make_train_step(model, optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                    config: ml_collections.ConfigDict) -> Callable:
  """Per-device CLP step over cross-identity units; reduces over the mesh axis `data` like
  supervised.make_train_step, and enqueues the keys of every device."""
  c, size = config.clp, config.data.image_size
  tcl, rebuild, cycle = c.tcl.weight > 0, c.cir.weight > 0, c.cir.cycle_weight > 0
  half = size // 2

  def train_step(state: TrainState, batch: dict):
    image = batch["image"]
    b, _, t = image.shape[:3]
    clips = 2 * b  # Clip 2u is person A of unit u, clip 2u + 1 person B.
    frames = image_ops.finish_images(
        image.reshape(clips, *image.shape[2:]), batch["flip"].reshape(clips),
        batch["jitter"].reshape(clips, 3), size).reshape(clips * t, size, size, 3)
    n = frames.shape[0]
    # One draw per clip: the key view of a clip is the same for all its frames, so that the keys
    # differ only by what changed over time (which TCL ranks), as the streamed view does.
    draw = uniform_rows(jax.random.fold_in(jax.random.key(config.seed), state.step), clips, 7)
    views = second_view(frames, jnp.repeat(draw, t, axis=0), c.view.min_scale,
                        c.view.color_jitter)
    key_codes, _ = model.apply(state.teacher, views, train=True, mutable=["batch_stats"])
    keys = jax.lax.stop_gradient(_normalize(key_codes))

    def loss_fn(params):
      variables = {"params": params, "batch_stats": state.batch_stats}
      au_code, new_vars = model.apply(variables, frames, train=True, mutable=["batch_stats"])
      queries = _normalize(au_code)
      nce, top1 = info_nce(queries, keys, state.queue, c.temperature,
                           t if c.clip_negatives else 1)
      terms = {"nce": global_mean(nce.sum(), n)}
      total = terms["nce"]
      stats = {"nce_top1": jnp.mean(top1)}
      if tcl:  # The anchor's key against every frame's query: the gradient reaches each frame.
        anchors = keys.reshape(clips, t, -1)[:, 0]
        similarities = jnp.einsum("cd,ctd->ct", anchors, queries.reshape(clips, t, -1))
        violation, ordered = temporal_margin(similarities, c.tcl.margin)
        terms["tcl"] = global_mean(violation.sum(), clips * t * (t - 1) / 2)
        total += c.tcl.weight * terms["tcl"]
        stats["tcl_ordered"] = jnp.mean(ordered)
      if rebuild or cycle:  # Each frame's AU code and pixels at the decoder's size, by clip.
        au = au_code.reshape(clips, t, -1)
        pixels = pool_to(normalize_image(frames, jnp.float32), half).reshape(
            clips, t, half, half, 3)
      if rebuild:  # Frame t: frame t + 1 of its clip (same person) moved to frame t's AU code.
        nxt = lambda x: jnp.roll(x, -1, axis=1).reshape(n, *x.shape[2:])
        rebuilt = model.apply(variables, au_code, nxt(pixels), nxt(au), method=model.decode)
        target = pixels.reshape(rebuilt.shape)
        error = jnp.abs(rebuilt - target)
        terms["reconstruction"] = global_mean(error.sum(), error.size)
        total += c.cir.weight * terms["reconstruction"]
        # The share of the frames' difference that the move explains (0: none, the frame as is).
        still = jnp.abs(nxt(pixels) - target).sum()
        stats["cir_explained"] = 1.0 - jax.lax.psum(error.sum(), AXIS) / jax.lax.psum(still, AXIS)
      if cycle:  # Each anchor's AU code shown by the other person's anchor, encoded again.
        anchor_au = au[:, 0]
        mixed = model.apply(variables, anchor_au, other_person(pixels[:, 0]),
                            other_person(anchor_au), method=model.decode)
        faces = jax.image.resize(denormalize(mixed), (clips, size, size, 3), "linear")
        again, _ = model.apply(variables, faces, train=True, mutable=["batch_stats"])
        agreement = jnp.sum(_normalize(again) * jax.lax.stop_gradient(_normalize(anchor_au)),
                            axis=-1)
        terms["cycle"] = global_mean((1.0 - agreement).sum(), clips)
        total += c.cir.cycle_weight * terms["cycle"]
      return total, (terms, stats, new_vars["batch_stats"])

    (local_loss, (terms, stats, batch_stats)), grads = global_value_and_grad(loss_fn, state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    momentum = optax.incremental_update({"params": params, "batch_stats": batch_stats},
                                        state.teacher, 1.0 - c.momentum)
    queue = jnp.concatenate([gather_rows(keys), state.queue])[:state.queue.shape[0]]
    metrics = {"loss": jax.lax.psum(local_loss, AXIS), "grad_norm": optax.tree.norm(grads),
               "learning_rate": schedule(state.step)}
    metrics.update({f"loss_{k}": jax.lax.psum(v, AXIS) for k, v in terms.items()})
    metrics.update({k: jax.lax.pmean(v, AXIS) for k, v in stats.items()})
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, teacher=momentum, queue=queue)
    return new_state, metrics

  return train_step


def make_swap_fn(model) -> Callable:
  """Jitted cross-identity reconstructions of pairs of faces A, B [P, 2, S, S, 3] (0-255):
  each face moved to its own AU code, and moved to the other's AU code (BatchNorm in inference
  mode); 0-255 at the decoder's size."""

  @jax.jit
  def swap(variables: dict, faces: jnp.ndarray) -> dict[str, jnp.ndarray]:
    p, size = faces.shape[0], faces.shape[2]
    flat = faces.reshape(2 * p, *faces.shape[2:])
    au = model.apply(variables, flat)
    pixels = pool_to(normalize_image(flat, jnp.float32), size // 2)
    own = denormalize(model.apply(variables, au, pixels, au, method=model.decode))
    mixed = denormalize(model.apply(variables, au, other_person(pixels), other_person(au),
                                    method=model.decode))
    shape = (p, 2, *own.shape[1:])
    return {"faces": faces, "own": own.reshape(shape), "swapped": mixed.reshape(shape)}

  return swap


def create(config: ml_collections.ConfigDict, num_aus: int):
  """The CLP network, its optimiser and state, with the momentum encoder and the queue."""
  model, optimizer, state = train_state.create(config, num_aus, teacher=True)
  return model, optimizer, state.replace(queue=initial_queue(config))


def train_inputs(config: ml_collections.ConfigDict, data, builder, splits, mesh,
                 start: int) -> Iterator[dict]:
  """Cross-identity units (two clips of two people) from step `start`."""
  local = parallel.local_batch_size(config.global_batch_size, "global_batch_size", mesh)
  units = data.train_stream(config, builder, splits, "cross_identity", local, start)
  return ({k: u[k] for k in UNIT_KEYS} for u in units)


def synthetic_batch(config: ml_collections.ConfigDict, num_aus: int,
                    rng: np.random.Generator) -> dict:
  """Cross-identity units: 2 clips of clip_length frames."""
  b = config.global_batch_size
  units = supervised.synthetic_frames(rng, (b, 2, config.data.clip_length),
                                      config.data.image_size)
  return {"image": units["image"], "flip": rng.random((b, 2)) < 0.5,
          "jitter": np.tile(np.float32([10.0, 1.1, 0.9]), (b, 2, 1))}


def write_samples(config: ml_collections.ConfigDict, data, builder, splits, model,
                  state: TrainState, workdir: str, num_pairs: int = 6) -> str:
  """`workdir/cir_samples.png`: pairs of test subjects, each face rebuilt from its own codes and
  from its AU code with the other person's identity code."""
  from wsrtl_jax import plots  # At the edge: `bench` imports this module without it.
  test = dataclasses.replace(splits, train=splits.test)
  units = next(data.train_stream(config, builder, test, "cross_identity", num_pairs))
  size = config.data.image_size
  anchors = units["image"][:, :, 0]  # [P, 2, C, C, 3]: each clip's first frame.
  faces = image_ops.finish_images(anchors.reshape(2 * num_pairs, *anchors.shape[2:]),
                                  units["flip"].reshape(-1), units["jitter"].reshape(-1, 3), size)
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  out = jax.device_get(make_swap_fn(model)(variables,
                                           faces.reshape(num_pairs, 2, size, size, 3)))
  title = (f"CLP cross-identity reconstruction, {config.data.name} test subjects, after "
           f"{config.num_train_steps} steps")
  return plots.plot_cir_samples(out, os.path.join(workdir, "cir_samples.png"), title)


METHOD = Method(
    name="clp",
    create=create,
    make_step=lambda config, model, optimizer, schedule, au_weights: make_train_step(
        model, optimizer, schedule, config),
    train_inputs=train_inputs,
    synthetic_batch=synthetic_batch,
    images_per_step=lambda config: config.global_batch_size * 2 * config.data.clip_length,
    has_labels=False,
    check_config=lambda config: needs_section(config, "configs/synthau_clp.py"),
    write_samples=write_samples,
)
