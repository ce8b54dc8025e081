"""The WSRTL method. Its per-device train step: AU loss on labelled frames, and on unlabelled frame
pairs RoI inpainting, single-image flow and mean-teacher semi-supervision, each switched on by a
weight above zero in `config.wsrtl` (so that ablations are config overrides).

The student's view of an unlabelled frame is its weak view re-jittered; inpainting masks AU
regions of it and reconstructs that very view, and the semi-supervised loss skips the AUs the
masks hide (`wsrtl.semi.masked_aus`). The labelled frames and the views go through the student
in one pass (`wsrtl.batch_norm="shared"`) or in two, each normalised with its own batch
statistics and the running statistics kept from the labelled frames alone (`"per_view"`). The
teacher (EMA of the student) sees the weak view. The flow target is computed inside the step:
the face's deformation from the mean face (`wsrtl.flow.target="template"`), or TV-L1 flow
(wsrtl_jax.flow) from frame t to its pair's other frame (`"pair"`, `data.pair_reference`),
aligned onto t on the stable landmarks (`wsrtl.flow.align`).
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
from jax.sharding import PartitionSpec as P

from data_pipeline.alignment import MEAN_TEMPLATE_68
from data_pipeline.augment_params import jitter_bounds
from data_pipeline.errors import UserError
from wsrtl_jax import flow, image_ops, losses, parallel, train_state
from wsrtl_jax.batch_ops import global_mean, global_value_and_grad, pool_to, uniform_rows
from wsrtl_jax.methods import Method, needs_section, supervised
from wsrtl_jax.models.resnet import IMAGE_MEAN, normalize_image
from wsrtl_jax.models.wsrtl import denormalize
from wsrtl_jax.parallel import AXIS
from wsrtl_jax.train_state import TrainState

PAIR_KEYS = ("image", "flip", "jitter", "au_centres", "landmarks")


def region_mask(scores: jnp.ndarray, centres: jnp.ndarray, num_masked: int, side: float,
                size: int) -> jnp.ndarray:
  """[B, size, size] bool: for each image, the square patches (`side` pixels) around both
  centres [B, A, 2, 2] of the `num_masked` AUs with the lowest random `scores` [B, A]."""
  b, a = centres.shape[:2]
  ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
  chosen = jnp.repeat(ranks < num_masked, 2, axis=1)  # [B, 2A]
  points = centres.reshape(b, 2 * a, 2)
  pixels = jnp.arange(size, dtype=jnp.float32)
  inside_x = jnp.abs(pixels - points[..., 0:1]) <= side / 2  # [B, 2A, S]
  inside_y = jnp.abs(pixels - points[..., 1:2]) <= side / 2
  return jnp.any(chosen[..., None, None] & inside_y[..., :, None] & inside_x[..., None, :],
                 axis=1)


def face_region(landmarks: jnp.ndarray, size: int, stride: int, margin: float = 0.1
                ) -> jnp.ndarray:
  """[B, size/stride, size/stride] bool: cells of a `stride` map whose centre lies in the
  landmarks' bounding box [B, 68, 2], widened by `margin` of its size (up by twice that, for
  the forehead)."""
  low, high = landmarks.min(axis=1), landmarks.max(axis=1)  # [B, 2]
  extent = high - low
  low = low - margin * extent * jnp.array([1.0, 2.0])
  high = high + margin * extent
  centres = jnp.arange(size // stride, dtype=jnp.float32) * stride + (stride - 1) / 2
  in_x = (centres >= low[:, 0:1]) & (centres <= high[:, 0:1])
  in_y = (centres >= low[:, 1:2]) & (centres <= high[:, 1:2])
  return in_y[:, :, None] & in_x[:, None, :]


# Landmarks that AUs barely move (the eye corners, the nose bridge, the jaw's ends at the ears):
# the similarity between two frames fitted on them is the head's and the camera's motion.
STABLE_LANDMARKS = (0, 16, 27, 28, 29, 30, 36, 39, 42, 45)


def fit_similarity(source: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
  """Least-squares similarities [B, 2, 3] taking points `source` [B, N, 2] onto `target`."""
  mean_s, mean_t = source.mean(1, keepdims=True), target.mean(1, keepdims=True)
  s, t = source - mean_s, target - mean_t
  norm = jnp.maximum((s ** 2).sum((1, 2)), 1e-9)
  a = (s[..., 0] * t[..., 0] + s[..., 1] * t[..., 1]).sum(1) / norm
  b = (s[..., 0] * t[..., 1] - s[..., 1] * t[..., 0]).sum(1) / norm
  rotation = jnp.stack([jnp.stack([a, -b], -1), jnp.stack([b, a], -1)], -2)  # [B, 2, 2]
  shift = mean_t[:, 0] - jnp.einsum("bij,bj->bi", rotation, mean_s[:, 0])
  return jnp.concatenate([rotation, shift[..., None]], axis=-1)


def aligned_second(frames: jnp.ndarray, landmarks: jnp.ndarray) -> jnp.ndarray:
  """The second frame of each pair [B, 2, S, S, 3] warped onto the first by the similarity of
  their stable landmarks [B, 2, 68, 2]: what is left between the two is the face's own motion."""
  stable = jnp.asarray(STABLE_LANDMARKS)
  matrix = fit_similarity(landmarks[:, 0, stable], landmarks[:, 1, stable])
  size = frames.shape[2]
  grid = jnp.stack(jnp.meshgrid(jnp.arange(size, dtype=jnp.float32),
                                jnp.arange(size, dtype=jnp.float32)), -1)  # [S, S, (x, y)]
  mapped = jnp.einsum("bij,hwj->bhwi", matrix[..., :2], grid) + matrix[:, None, None, :, 2]
  return flow.warp(frames[:, 1], mapped - grid)


def pair_flow(frames: jnp.ndarray, landmarks: jnp.ndarray, stride: int,
              config: ml_collections.ConfigDict) -> jnp.ndarray:
  """Flow from the first frame of each pair [B, 2, S, S, 3] (0-255) to the second (aligned onto
  the first on the stable landmarks [B, 2, 68, 2] where `config.align`), averaged over `stride` x
  `stride` cells and in the pixels of that map: [B, S/stride, S/stride, 2]."""
  second = aligned_second(frames, landmarks) if config.get("align", False) else frames[:, 1]
  full = flow.estimate_flow(frames[:, 0] / 255.0, second / 255.0, levels=config.levels,
                            warps=config.warps, iterations=config.iterations)
  return pool_to(full, full.shape[1] // stride) / stride


def template_flow(landmarks: jnp.ndarray, size: int, stride: int, sigma: float = 1.0
                  ) -> jnp.ndarray:
  """The face's deformation from the mean face, a function of the one frame: the displacement of
  each of its landmarks [B, 68, 2] from the mean template placed on them (the similarity fitted
  on the stable landmarks), spread to the cells of a `stride` map by Gaussian weights of
  `sigma` cells around each landmark (normalised), in the pixels of that map:
  [B, size/stride, size/stride, 2]."""
  template = jnp.broadcast_to(jnp.asarray(MEAN_TEMPLATE_68, jnp.float32), landmarks.shape)
  stable = jnp.asarray(STABLE_LANDMARKS)
  matrix = fit_similarity(template[:, stable], landmarks[:, stable])
  placed = jnp.einsum("bij,bnj->bni", matrix[..., :2], template) + matrix[:, None, :, 2]
  shift = (landmarks - placed) / stride  # [B, 68, 2]
  centres = jnp.arange(size // stride, dtype=jnp.float32) * stride + (stride - 1) / 2
  dx = (centres[None, None, :] - landmarks[..., 0:1]) / (sigma * stride)  # [B, 68, W]
  dy = (centres[None, None, :] - landmarks[..., 1:2]) / (sigma * stride)  # [B, 68, H]
  weights = jnp.exp(-0.5 * (dy[..., :, None] ** 2 + dx[..., None, :] ** 2))  # [B, 68, H, W]
  return (jnp.einsum("bnhw,bnc->bhwc", weights, shift)
          / (weights.sum(1)[..., None] + 1e-6))


FLOW_TARGETS = ("template", "pair")  # wsrtl.flow.target


def flow_target(frames: jnp.ndarray, landmarks: jnp.ndarray, stride: int,
                config: ml_collections.ConfigDict) -> jnp.ndarray:
  """The flow head's target on the pairs [B, 2, S, S, 3] with their landmarks [B, 2, 68, 2]:
  template_flow of the first frame (`config.target="template"`) or pair_flow (`"pair"`)."""
  with jax.named_scope("flow_targets"):  # What a profile of the step names these ops by.
    if config.get("target", "pair") == "template":
      return template_flow(landmarks[:, 0], frames.shape[2], stride)
    return pair_flow(frames, landmarks, stride, config)


def inpainting_sums(reconstruction: jnp.ndarray, pixels: jnp.ndarray, mask: jnp.ndarray
                    ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """L1 over the masked pixels [B, s, s, 1] of the reconstruction [B, s, s, 3] against `pixels`,
  and that of a mean-colour fill (each image's mean colour over its unmasked pixels, what the
  input shows): the loss's numerator and the trivial predictor's, for `inpainting_skill`."""
  visible = 1.0 - mask
  fill = (pixels * visible).sum((1, 2), keepdims=True) / jnp.maximum(
      visible.sum((1, 2), keepdims=True), 1.0)
  return (jnp.abs(reconstruction - pixels) * mask).sum(), (jnp.abs(fill - pixels) * mask).sum()


def flow_sums(predicted: jnp.ndarray, target: jnp.ndarray, face: jnp.ndarray
              ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """End-point error [B, s, s, 2] summed over the face cells [B, s, s], of the prediction and of
  predicting zero flow: the loss's numerator and the trivial predictor's, for `flow_skill`."""
  epe = jnp.sqrt(jnp.sum((predicted - target) ** 2, axis=-1) + 1e-6)
  zero = jnp.sqrt(jnp.sum(target ** 2, axis=-1) + 1e-6)
  return (epe * face).sum(), (zero * face).sum()


def skill(error_sum: jnp.ndarray, baseline_sum: jnp.ndarray) -> jnp.ndarray:
  """1 - error / trivial predictor's error, over every device (0: no better than it, 1: exact)."""
  return 1.0 - jax.lax.psum(error_sum, AXIS) / jnp.maximum(jax.lax.psum(baseline_sum, AXIS),
                                                            1e-12)


def rampup(step: jnp.ndarray, steps: int) -> jnp.ndarray:
  """Laine & Aila's sigmoid ramp-up exp(-5 (1 - t)^2), from 0 at step 0 to 1 at `steps`."""
  t = jnp.clip(step / max(steps, 1), 0.0, 1.0)
  return jnp.exp(-5.0 * (1.0 - t) ** 2)


def pseudo_labels(probs: jnp.ndarray, positive: float, negative: float) -> jnp.ndarray:
  """The teacher's confident calls: 1 above `positive`, 0 below `negative`, else -1 (unknown)."""
  return jnp.where(probs > positive, 1, jnp.where(probs < negative, 0, -1))


def uses_pairs(config: ml_collections.ConfigDict) -> bool:
  """Whether any loss needs the unlabelled pairs."""
  w = config.wsrtl
  return max(w.inpainting.weight, w.flow.weight, w.semi.weight) > 0


def hidden_aus(mask: jnp.ndarray, centres: jnp.ndarray) -> jnp.ndarray:
  """[B, A] bool: the AUs both of whose centres [B, A, 2, 2] (x, y) lie in the masked pixels
  [B, S, S]: the masked input shows neither (centres off the image count as not masked)."""
  size = mask.shape[1]
  pixel = jnp.round(centres).astype(jnp.int32)
  inside = jnp.all((pixel >= 0) & (pixel < size), axis=-1)
  pixel = jnp.clip(pixel, 0, size - 1)
  rows = jnp.arange(mask.shape[0])[:, None, None]
  return jnp.all(mask[rows, pixel[..., 1], pixel[..., 0]] & inside, axis=-1)


def student_views(weak: jnp.ndarray, centres: jnp.ndarray, draw: jnp.ndarray,
                  w: ml_collections.ConfigDict, size: int) -> dict[str, jnp.ndarray]:
  """The student's view of the unlabelled frames `weak` [B, S, S, 3] (0-255) and what the
  auxiliary losses compare it with, from the per-image uniform draws [B, 3 + A].

  `view`: the weak view re-jittered (`semi.strong_jitter`), the image the network is given; with
  inpainting, `input` is `view` with the AU regions of `mask` [B, S, S] filled with the mean
  colour, `pixels` is `view` normalised (the inpainting target: only colours the input showed
  outside the masks) and `hidden` [B, A] the AUs the masks hide (hidden_aus of `centres`, the
  model's AUs' [B, A, 2, 2])."""
  view = weak
  if w.semi.strong_jitter > 0:
    low, high = map(jnp.asarray, jitter_bounds(w.semi.strong_jitter))
    view = image_ops.colour_jitter(view, low + (high - low) * draw[:, :3])
  out = {"view": view, "input": view}
  if w.inpainting.weight > 0:
    mask = region_mask(draw[:, 3:], centres, w.inpainting.num_masked,
                       w.inpainting.patch_fraction * size, size)
    out.update(mask=mask, pixels=normalize_image(view, jnp.float32),
               hidden=hidden_aus(mask, centres),
               input=jnp.where(mask[..., None], IMAGE_MEAN, view))
  return out


def check_choices(config: ml_collections.ConfigDict) -> None:
  """UserError for a WSRTL choice outside its options."""
  needs_section(config, "configs/synthau_wsrtl.py")
  w = config.wsrtl
  for key, value, options in (("wsrtl.batch_norm", w.get("batch_norm", "shared"), BATCH_NORMS),
                              ("wsrtl.semi.masked_aus", w.semi.get("masked_aus", "keep"),
                               MASKED_AUS),
                              ("wsrtl.flow.target", w.flow.get("target", "pair"), FLOW_TARGETS)):
    if value not in options:
      raise UserError(f"{key}={value!r}; choose one of {', '.join(map(repr, options))}")
  pair_as_cached = w.flow.get("target", "pair") == "pair" and not w.flow.get("align", False)
  if config.data.get("flow_cache") and w.flow.weight > 0 and not pair_as_cached:
    raise UserError("data.flow_cache holds flow between the unaligned frames of each pair; "
                    "with it set wsrtl.flow.target='pair' and wsrtl.flow.align=False, or leave "
                    "data.flow_cache empty")


BATCH_NORMS = ("per_view", "shared")  # wsrtl.batch_norm
MASKED_AUS = ("ignore", "keep")  # wsrtl.semi.masked_aus


def unlabelled_targets(model, teacher: dict | None, pairs: dict, step: jnp.ndarray,
                       config: ml_collections.ConfigDict) -> tuple[dict, dict]:
  """The student's views of the pairs' first frames (student_views, drawn from the seed and
  `step`) and the auxiliary targets: the flow and face cells [B, S/4, S/4] where flow is on, and
  where the mean teacher is on its pseudo-labels [B, A] on the weak view, -1 (none) for the AUs
  the masks hide when `wsrtl.semi.masked_aus="ignore"`."""
  w, size = config.wsrtl, config.data.image_size
  frames = image_ops.finish_images(pairs["image"], pairs["flip"], pairs["jitter"], size)
  weak, weak_centres = frames[:, 0], pairs["au_centres"][:, 0]
  draw = uniform_rows(jax.random.fold_in(jax.random.key(config.seed), step), weak.shape[0],
                      3 + len(model.token_aus))
  views = student_views(weak, weak_centres[:, jnp.asarray(model.token_aus)], draw, w, size)
  targets = {}
  if w.flow.weight > 0:  # Cached offline targets if the pipeline streams them, else TV-L1.
    targets["flow"] = (pairs["flow"] if "flow" in pairs else jax.lax.stop_gradient(
        flow_target(frames, pairs["landmarks"], 4, w.flow)))
    targets["face"] = face_region(pairs["landmarks"][:, 0], size, 4)
  if w.semi.weight > 0:
    teacher_logits, _ = model.apply(teacher, weak, weak_centres, train=True,
                                    mutable=["batch_stats"])
    pseudo = pseudo_labels(jax.nn.sigmoid(jax.lax.stop_gradient(teacher_logits)),
                           w.semi.positive_threshold, w.semi.negative_threshold)
    if "hidden" in views and w.semi.get("masked_aus", "keep") == "ignore":
      pseudo = jnp.where(views["hidden"], -1, pseudo)
    targets["pseudo"] = pseudo
  return views, targets


def make_train_step(model, optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                    au_weights: jnp.ndarray, config: ml_collections.ConfigDict) -> Callable:
  """Per-device WSRTL step over {"labelled": frames, "pairs": unlabelled frame pairs}; reduces
  over the mesh axis `data` like supervised.make_train_step."""
  w, size = config.wsrtl, config.data.image_size
  inpaint, predict_flow, semi = (w.inpainting.weight > 0, w.flow.weight > 0, w.semi.weight > 0)
  unlabelled = uses_pairs(config)
  per_view = w.get("batch_norm", "shared") == "per_view"

  def train_step(state: TrainState, batch: dict):
    lab = batch["labelled"]
    images = image_ops.finish_images(lab["image"], lab["flip"], lab["jitter"], size)
    n = images.shape[0]
    views, targets, weak_centres = {}, {}, None
    if unlabelled:
      weak_centres = batch["pairs"]["au_centres"][:, 0]
      views, targets = unlabelled_targets(model, state.teacher, batch["pairs"], state.step,
                                          config)

    def forward(params):
      """The student's outputs: AU logits of the labelled frames then of the student views, and
      the decoders' outputs on the views; with `per_view` BatchNorm, two passes, the running
      statistics kept from the labelled frames' alone."""
      apply = lambda x, c, **kw: model.apply(
          {"params": params, "batch_stats": state.batch_stats}, x, c, train=True,
          method=model.train_outputs, mutable=["batch_stats"], **kw)
      if not unlabelled:
        return apply(images, lab["au_centres"], reconstruct=False, predict_flow=False)
      if not per_view:
        return apply(jnp.concatenate([images, views["input"]]),
                     jnp.concatenate([lab["au_centres"], weak_centres]), decode_from=n,
                     reconstruct=inpaint, predict_flow=predict_flow)
      out, new_vars = apply(images, lab["au_centres"], reconstruct=False, predict_flow=False)
      aux, _ = apply(views["input"], weak_centres, reconstruct=inpaint, predict_flow=predict_flow)
      return {**aux, "logits": jnp.concatenate([out["logits"], aux["logits"]])}, new_vars

    def loss_fn(params):
      out, new_vars = forward(params)
      logits = out["logits"]
      terms = {"au": global_mean(*losses.weighted_bce_sum(logits[:n], lab["label"],
                                                           au_weights))}
      total, sums = terms["au"], {}
      if inpaint:
        reconstruction = out["reconstruction"]
        pixels = pool_to(views["pixels"], reconstruction.shape[1])
        mask = pool_to(views["mask"][..., None].astype(jnp.float32), reconstruction.shape[1])
        sums["inpainting"] = inpainting_sums(reconstruction, pixels, mask)
        terms["inpainting"] = global_mean(sums["inpainting"][0], 3.0 * mask.sum())
        total += w.inpainting.weight * terms["inpainting"]
      if predict_flow:
        face = targets["face"].astype(jnp.float32)
        sums["flow"] = flow_sums(out["flow"], targets["flow"], face)
        terms["flow"] = global_mean(sums["flow"][0], face.sum())
        total += w.flow.weight * terms["flow"]
      if semi:
        loss_sum, _ = losses.weighted_bce_sum(logits[n:], targets["pseudo"], au_weights)
        terms["semi"] = global_mean(loss_sum, jnp.float32(targets["pseudo"].size))
        total += w.semi.weight * rampup(state.step, w.semi.rampup_steps) * terms["semi"]
      return total, (terms, jax.lax.stop_gradient(sums), new_vars["batch_stats"])

    (local_loss, (terms, sums, batch_stats)), grads = global_value_and_grad(loss_fn,
                                                                            state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    teacher = state.teacher
    if semi:
      teacher = optax.incremental_update({"params": params, "batch_stats": batch_stats},
                                         teacher, 1.0 - w.semi.ema_decay)
    metrics = {"loss": jax.lax.psum(local_loss, AXIS), "grad_norm": optax.tree.norm(grads),
               "learning_rate": schedule(state.step)}
    metrics.update({f"loss_{k}": jax.lax.psum(v, AXIS) for k, v in terms.items()})
    metrics.update({f"{k}_skill": skill(*v) for k, v in sums.items()})
    if semi:
      confident = jnp.mean((targets["pseudo"] >= 0).astype(jnp.float32))
      metrics["pseudo_label_coverage"] = jax.lax.pmean(confident, AXIS)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, teacher=teacher)
    return new_state, metrics

  return train_step


def _aux_outputs(model, config: ml_collections.ConfigDict, variables: dict, pairs: dict,
                 key: jax.Array) -> tuple:
  """The auxiliary tasks on pairs in inference mode (BatchNorm's running statistics), masks
  drawn as in training: (frames [B, 2, S, S, 3] 0-255, mask [B, S, S], masked first frames,
  the network's outputs on them)."""
  w, size = config.wsrtl, config.data.image_size
  frames = image_ops.finish_images(pairs["image"], pairs["flip"], pairs["jitter"], size)
  first, centres = frames[:, 0], pairs["au_centres"][:, 0]
  scores = jax.random.uniform(key, (first.shape[0], len(model.token_aus)))
  mask = region_mask(scores, centres[:, jnp.asarray(model.token_aus)], w.inpainting.num_masked,
                     w.inpainting.patch_fraction * size, size)
  masked = jnp.where(mask[..., None], IMAGE_MEAN, first)
  out = model.apply(variables, masked, centres, train=False, method=model.train_outputs)
  return frames, mask, masked, out


def make_sample_fn(model, config: ml_collections.ConfigDict) -> Callable:
  """Jitted outputs of the auxiliary tasks on pairs, for the sample sheet: the intact first
  frames, the masked inputs, the reconstructions (the decoder's pixels in the masked regions,
  the input elsewhere; 0-255), and the target and predicted flow (BatchNorm in inference
  mode)."""

  @jax.jit
  def sample(variables: dict, pairs: dict, key: jax.Array) -> dict[str, jnp.ndarray]:
    frames, mask, masked, out = _aux_outputs(model, config, variables, pairs, key)
    first = frames[:, 0]
    filled = jax.image.resize(denormalize(out["reconstruction"]), first.shape, "linear")
    return {"input": first, "masked": masked,
            "reconstruction": jnp.where(mask[..., None], filled, first),
            "target_flow": flow_target(frames, pairs["landmarks"], 4, config.wsrtl.flow),
            "predicted_flow": out["flow"]}

  return sample


def make_skill_fn(model, config: ml_collections.ConfigDict) -> Callable:
  """Jitted (error, trivial predictor's error) sums of each auxiliary task that is on, on a batch
  of pairs, as the train step computes them but in inference mode."""
  w, size = config.wsrtl, config.data.image_size

  @jax.jit
  def sums(variables: dict, pairs: dict, key: jax.Array) -> dict[str, tuple]:
    frames, mask, _, out = _aux_outputs(model, config, variables, pairs, key)
    result = {}
    if w.inpainting.weight > 0:
      side = out["reconstruction"].shape[1]
      result["inpainting"] = inpainting_sums(
          out["reconstruction"], pool_to(normalize_image(frames[:, 0], jnp.float32), side),
          pool_to(mask[..., None].astype(jnp.float32), side))
    if w.flow.weight > 0:
      face = face_region(pairs["landmarks"][:, 0], size, 4).astype(jnp.float32)
      result["flow"] = flow_sums(out["flow"], flow_target(frames, pairs["landmarks"], 4, w.flow),
                                face)
    return result

  return sums


def evaluate_extras(config: ml_collections.ConfigDict, builder, splits, model,
                    state: TrainState, which: str, batches: int = 4) -> dict:
  """`flow_skill` and `inpainting_skill` of `state` (those whose loss is on) on `batches`
  batches of pairs of the `which` split's subjects, with `skill_pairs` (how many)."""
  if config.wsrtl.inpainting.weight <= 0 and config.wsrtl.flow.weight <= 0:
    return {}
  from wsrtl_jax.experiment import data_source  # At the edge: streams need TensorFlow.
  on_device = config.copy_and_resolve_references()
  on_device.data.flow_cache = ""  # Targets computed here: a cache covers training pairs only.
  part = dataclasses.replace(splits, train=getattr(splits, which))
  stream = data_source(config).train_stream(on_device, builder, part, "pairs",
                                            config.wsrtl.pairs_batch_size)
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  sums_of = make_skill_fn(model, config)
  totals: dict[str, np.ndarray] = {}
  for i in range(batches):
    pairs = next(stream)
    sums = jax.device_get(sums_of(variables, {k: pairs[k] for k in PAIR_KEYS},
                                  jax.random.key(config.seed + i)))
    for task, pair in sums.items():
      totals[task] = totals.get(task, 0.0) + np.asarray(pair, np.float64)
  return {**{f"{task}_skill": round(float(1.0 - error / max(baseline, 1e-12)), 4)
             for task, (error, baseline) in totals.items()},
          "skill_pairs": batches * config.wsrtl.pairs_batch_size}


def create(config: ml_collections.ConfigDict, num_aus: int):
  """The WSRTL network, its optimiser and state, with a mean teacher where the semi-supervised
  loss is on."""
  return train_state.create(config, num_aus, teacher=config.wsrtl.semi.weight > 0)


def train_inputs(config: ml_collections.ConfigDict, data, builder, splits, mesh,
                 start: int) -> Iterator[dict]:
  """{"labelled": frames, "pairs": unlabelled frame pairs (t, t + data.pair_gap)} from step
  `start`; the pairs carry their cached flow where `data.flow_cache` names one."""
  labelled = supervised.labelled_inputs(config, data, builder, splits, mesh, start)
  local_pairs = parallel.local_batch_size(config.wsrtl.pairs_batch_size,
                                          "wsrtl.pairs_batch_size", mesh)
  pairs = data.train_stream(config, builder, splits, "pairs", local_pairs, start)
  keys = PAIR_KEYS + (("flow",) if config.data.get("flow_cache") else ())
  return ({"labelled": lab, "pairs": {k: p[k] for k in keys}} for lab, p in zip(labelled, pairs))


def synthetic_batch(config: ml_collections.ConfigDict, num_aus: int,
                    rng: np.random.Generator) -> dict:
  labelled = supervised.synthetic_labelled(config, num_aus, rng)
  return {"labelled": labelled,
          "pairs": supervised.synthetic_frames(rng, (config.wsrtl.pairs_batch_size, 2),
                                               config.data.image_size)}


def images_per_step(config: ml_collections.ConfigDict) -> int:
  """The labelled batch and, where a loss uses them, the pairs' first frames."""
  return config.global_batch_size + (config.wsrtl.pairs_batch_size if uses_pairs(config) else 0)


def write_samples(config: ml_collections.ConfigDict, data, builder, splits, model,
                  state: TrainState, workdir: str, num_frames: int = 6) -> str:
  """`workdir/wsrtl_samples.png`: masked inputs, reconstructions, target and predicted flow of
  the trained network on a few test-subject pairs."""
  from wsrtl_jax import plots  # At the edge: `bench` imports this module without it.
  test_pairs = dataclasses.replace(splits, train=splits.test)
  on_device = config.copy_and_resolve_references()
  on_device.data.flow_cache = ""  # Targets computed here: a cache covers training pairs only.
  pairs = next(data.train_stream(on_device, builder, test_pairs, "pairs", num_frames))
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  sample = make_sample_fn(model, config)
  out = jax.device_get(sample(variables, {k: pairs[k] for k in PAIR_KEYS},
                              jax.random.key(config.seed)))
  template = config.wsrtl.flow.get("target", "pair") == "template"
  target = ("deformation from the mean face" if template else
            f"TV-L1 flow of the pairs ({config.data.get('pair_reference', 'next')} frame)")
  title = (f"WSRTL on {config.data.name} test subjects after {config.num_train_steps} steps "
           f"(flow target: {target}; flow at 1/4 resolution)")
  return plots.plot_wsrtl_samples(out, os.path.join(workdir, "wsrtl_samples.png"), title)


def bench_extras(config: ml_collections.ConfigDict, batch: dict, mesh, step_seconds: float,
                 timer: Callable) -> dict:
  """The flow targets alone (finishing the pairs and TV-L1), on the same devices and shards as
  the step, and their share of it."""
  if config.wsrtl.flow.weight <= 0:
    return {}
  size = config.data.image_size

  def targets(p):
    frames = image_ops.finish_images(p["image"], p["flip"], p["jitter"], size)
    return flow_target(frames, p["landmarks"], 4, config.wsrtl.flow)

  fn = jax.jit(jax.shard_map(targets, mesh=mesh, in_specs=P(AXIS), out_specs=P(AXIS)))
  flow_s = timer(fn, (batch["pairs"],))
  return {"flow_target_ms": round(1e3 * flow_s, 3), "flow_share": round(flow_s / step_seconds, 4)}


METHOD = Method(
    name="wsrtl",
    create=create,
    make_step=lambda config, model, optimizer, schedule, au_weights: make_train_step(
        model, optimizer, schedule, au_weights, config),
    train_inputs=train_inputs,
    synthetic_batch=synthetic_batch,
    images_per_step=images_per_step,
    check_config=check_choices,
    write_samples=write_samples,
    evaluate_extras=evaluate_extras,
    batch_keys=("global_batch_size", "wsrtl.pairs_batch_size"),
    bench_extras=bench_extras,
)
