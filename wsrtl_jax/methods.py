"""The training method a config names (`method`: supervised, wsrtl or clp): its per-device step,
its initial state and what a step consumes. No TensorFlow here, so that `bench` runs without it."""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import ml_collections
import optax

from wsrtl_jax import clp_training, training, wsrtl_training
from data_pipeline.errors import UserError

METHODS = ("supervised", "wsrtl", "clp")
_SOURCE = {"wsrtl": "configs/synthau_wsrtl.py", "clp": "configs/synthau_clp.py"}


def method_of(config: ml_collections.ConfigDict) -> str:
  """The config's `method`; configs without the key (earlier releases) are supervised."""
  return config.get("method", "supervised")


def check_method(config: ml_collections.ConfigDict) -> None:
  """Raises UserError naming a method that does not exist or lacks its config section."""
  method = method_of(config)
  if method not in METHODS:
    raise UserError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
  if method != "supervised" and (method not in config or config.model.get("name") != method):
    raise UserError(f"method '{method}' needs the config's `{method}` section and "
                    f"model.name='{method}' (start from {_SOURCE[method]})")


def is_wsrtl(config: ml_collections.ConfigDict) -> bool:
  return method_of(config) == "wsrtl"


def is_pretraining(config: ml_collections.ConfigDict) -> bool:
  """Whether the method learns without AU labels (CLP): no AU metrics until linear evaluation."""
  return method_of(config) == "clp"


def images_per_step(config: ml_collections.ConfigDict) -> int:
  """Frames the student sees per step: the labelled batch and the pairs' first frames (WSRTL),
  or every frame of the cross-identity units (CLP: two clips each)."""
  if is_pretraining(config):
    return config.global_batch_size * 2 * config.data.clip_length
  uses_pairs = is_wsrtl(config) and wsrtl_training.uses_pairs(config)
  return config.global_batch_size + (config.wsrtl.pairs_batch_size if uses_pairs else 0)


def create(config: ml_collections.ConfigDict, num_aus: int):
  """training.create for `config.method`: the state holds a mean teacher where WSRTL's
  semi-supervised loss is on, and CLP's momentum encoder and queue."""
  pretraining = is_pretraining(config)
  teacher = pretraining or (is_wsrtl(config) and config.wsrtl.semi.weight > 0)
  model, optimizer, state = training.create(config, num_aus, teacher)
  if pretraining:
    state = state.replace(queue=clp_training.initial_queue(config))
  return model, optimizer, state


def make_step(config: ml_collections.ConfigDict, model, optimizer: optax.GradientTransformation,
              schedule: optax.Schedule, au_weights: jnp.ndarray | None) -> Callable:
  """The per-device train step of `config.method` (CLP uses no AU weights)."""
  if is_pretraining(config):
    return clp_training.make_train_step(model, optimizer, schedule, config)
  if is_wsrtl(config):
    return wsrtl_training.make_train_step(model, optimizer, schedule, au_weights, config)
  return training.make_train_step(model, optimizer, schedule, au_weights,
                                  config.data.image_size)
