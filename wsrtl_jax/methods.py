"""The training method a config names (`method`: supervised or wsrtl): its per-device step and
what a step consumes. No TensorFlow here, so that `bench` runs without it."""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import ml_collections
import optax

from wsrtl_jax import training, wsrtl_training
from wsrtl_jax.errors import UserError

METHODS = ("supervised", "wsrtl")


def check_method(config: ml_collections.ConfigDict) -> None:
  """Raises UserError naming a method that does not exist or lacks its config section."""
  method = config.get("method", "supervised")
  if method not in METHODS:
    raise UserError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
  if method == "wsrtl" and ("wsrtl" not in config or config.model.get("name") != "wsrtl"):
    raise UserError("method 'wsrtl' needs the config's `wsrtl` section and model.name='wsrtl' "
                    "(start from configs/synthau_wsrtl.py)")


def is_wsrtl(config: ml_collections.ConfigDict) -> bool:
  return config.get("method", "supervised") == "wsrtl"


def images_per_step(config: ml_collections.ConfigDict) -> int:
  """Frames the student sees per step: the labelled batch, and the pairs' first frames."""
  uses_pairs = is_wsrtl(config) and wsrtl_training.uses_pairs(config)
  return config.global_batch_size + (config.wsrtl.pairs_batch_size if uses_pairs else 0)


def create(config: ml_collections.ConfigDict, num_aus: int):
  """training.create for `config.method`: the state holds a mean teacher only where WSRTL's
  semi-supervised loss is on."""
  teacher = is_wsrtl(config) and config.wsrtl.semi.weight > 0
  return training.create(config, num_aus, teacher)


def make_step(config: ml_collections.ConfigDict, model, optimizer: optax.GradientTransformation,
              schedule: optax.Schedule, au_weights: jnp.ndarray) -> Callable:
  """The per-device train step of `config.method`."""
  if is_wsrtl(config):
    return wsrtl_training.make_train_step(model, optimizer, schedule, au_weights, config)
  return training.make_train_step(model, optimizer, schedule, au_weights,
                                  config.data.image_size)
