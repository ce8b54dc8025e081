"""The train state, the optimiser and the per-device supervised train step (pure functions)."""
from __future__ import annotations

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from data_pipeline.au_sets import CENTRE_AUS
from wsrtl_jax import image_ops, losses, models
from wsrtl_jax.batch_ops import global_value_and_grad
from wsrtl_jax.parallel import AXIS


@flax.struct.dataclass
class TrainState:
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any
  teacher: Any = None  # {"params", "batch_stats"}: an EMA of the student (WSRTL's mean teacher,
  # CLP's momentum encoder), if the method has one.
  queue: Any = None  # CLP's queue of negative keys [K, D], newest first.


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up to the peak rate, then cosine decay to zero at the last step."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.optim.learning_rate,
      warmup_steps=config.optim.warmup_steps,
      decay_steps=max(config.num_train_steps, config.optim.warmup_steps + 1), end_value=0.0)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with warm-up + cosine; no weight decay on biases and norm scales (ndim < 2)."""
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  parts = []
  if config.optim.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(config.optim.grad_clip_norm))
  parts.append(optax.adamw(learning_rate_schedule(config), weight_decay=config.optim.weight_decay,
                           mask=decay_mask))
  return optax.chain(*parts)


def init_train_state(model: nn.Module, optimizer: optax.GradientTransformation,
                     image_shape: tuple[int, ...], seed: int, teacher: bool = False
                     ) -> TrainState:
  """Initialises parameters on the host, outside any mesh axis (every head and decoder, for a
  model with `train_outputs`); `teacher` starts the mean teacher as a copy of the student."""
  images = jnp.zeros((1, *image_shape), jnp.uint8)
  centres = jnp.zeros((1, len(CENTRE_AUS), 2, 2), jnp.float32)
  method = getattr(model, "train_outputs", None)
  variables = model.init(jax.random.key(seed), images, centres, train=False, method=method)
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables["batch_stats"], opt_state=optimizer.init(params),
                    teacher=jax.tree.map(jnp.copy, dict(variables)) if teacher else None)


def create(config: ml_collections.ConfigDict, num_aus: int, teacher: bool = False
           ) -> tuple[nn.Module, optax.GradientTransformation, TrainState]:
  """The configured model, its optimiser and a freshly initialised state (with a mean teacher
  if asked), on the host."""
  model = models.build_model(config, num_aus)
  optimizer = make_optimizer(config)
  size = config.data.image_size
  return model, optimizer, init_train_state(model, optimizer, (size, size, 3), config.seed,
                                            teacher)


def make_train_step(model: nn.Module, optimizer: optax.GradientTransformation,
                    schedule: optax.Schedule, au_weights: jnp.ndarray,
                    image_size: int) -> Callable:
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


def make_predict_fn(model: nn.Module, image_size: int, output: Callable = jax.nn.sigmoid,
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
