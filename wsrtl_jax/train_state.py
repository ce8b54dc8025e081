"""The train state every method shares, its optimiser and learning-rate schedule (pure
functions)."""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from data_pipeline.au_sets import CENTRE_AUS
from wsrtl_jax import models


@flax.struct.dataclass
class TrainState:
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any
  teacher: Any = None  # {"params", "batch_stats"}: an EMA of the student (a mean teacher, a
  # momentum encoder), for a method that keeps one.
  queue: Any = None  # A queue of negative keys [K, D], newest first, for a method that keeps one.


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
