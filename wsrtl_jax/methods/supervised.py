"""The supervised method: weighted BCE on the labelled frames alone (any AU model; the baseline
every other method is judged against)."""
from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipeline.au_sets import CENTRE_AUS
from wsrtl_jax import image_ops, losses, parallel, train_state
from wsrtl_jax.batch_ops import global_value_and_grad
from wsrtl_jax.methods import Method
from wsrtl_jax.parallel import AXIS
from wsrtl_jax.train_state import TrainState

LABELLED_KEYS = ("image", "flip", "jitter", "label", "au_centres")


def make_train_step(model, optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                    au_weights: jnp.ndarray, image_size: int) -> Callable:
  """Per-device step over its shard of the batch; reduces over the mesh axis `data`. The batch
holds the host's uint8 crops `image`, their `flip` and colour `jitter` (finished here into
`image_size` inputs, see image_ops.finish_images) and `label`.

  The loss is the global mean over known labels: each device divides its sum by the global count,
  so summing gradients over devices gives exactly the gradient of the whole batch, whatever the
  number of devices.
  """

  def train_step(state: TrainState, batch: dict[str, jnp.ndarray]):
    images = image_ops.finish_images(batch["image"], batch["flip"], batch["jitter"], image_size)

    def loss_fn(params):
      logits, new_vars = model.apply({"params": params, "batch_stats": state.batch_stats},
                                     images, train=True, mutable=["batch_stats"])
      loss_sum, count = losses.weighted_bce_sum(logits, batch["label"], au_weights)
      global_count = jax.lax.psum(count, AXIS)
      return loss_sum / jnp.maximum(global_count, 1.0), new_vars["batch_stats"]

    (local_loss, batch_stats), grads = global_value_and_grad(loss_fn, state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": jax.lax.psum(local_loss, AXIS),
               "grad_norm": optax.tree.norm(grads),
               "learning_rate": schedule(state.step)}
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, metrics

  return train_step


def labelled_inputs(config: ml_collections.ConfigDict, data, builder, splits, mesh,
                    start: int) -> Iterator[dict]:
  """This host's labelled training frames from step `start`."""
  local = parallel.local_batch_size(config.global_batch_size, "global_batch_size", mesh)
  return ({k: b[k] for k in LABELLED_KEYS}
          for b in data.train_batches(config, builder, splits, local, start))


def synthetic_frames(rng: np.random.Generator, shape: tuple[int, ...], size: int) -> dict:
  """Random uint8 crops `shape` + [size, size, 3] with a flip, a colour jitter, AU centres and
  landmarks inside the image, as the pipeline ships them (crop 224 of 256, no resize)."""
  b = shape[0]
  return {"image": rng.integers(0, 256, (*shape, size, size, 3), dtype=np.uint8),
          "flip": np.arange(b) % 2 == 0,
          "jitter": np.tile(np.float32([10.0, 1.1, 0.9]), (b, 1)),
          "au_centres": rng.uniform(0.2, 0.8, (*shape, len(CENTRE_AUS), 2, 2)).astype(
              np.float32) * size,
          "landmarks": rng.uniform(0.2, 0.8, (*shape, 68, 2)).astype(np.float32) * size}


def synthetic_labelled(config: ml_collections.ConfigDict, num_aus: int,
                       rng: np.random.Generator) -> dict:
  """A labelled host batch of random frames and labels."""
  labelled = synthetic_frames(rng, (config.global_batch_size,), config.data.image_size)
  labelled["label"] = rng.integers(0, 2, (config.global_batch_size, num_aus), dtype=np.int32)
  return labelled


METHOD = Method(
    name="supervised",
    create=lambda config, num_aus: train_state.create(config, num_aus),
    make_step=lambda config, model, optimizer, schedule, au_weights: make_train_step(
        model, optimizer, schedule, au_weights, config.data.image_size),
    train_inputs=labelled_inputs,
    synthetic_batch=synthetic_labelled,
    images_per_step=lambda config: config.global_batch_size,
)
