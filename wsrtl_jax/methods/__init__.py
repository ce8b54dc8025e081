"""Training methods, looked up by the config's `method` name: each is a `Method`, the small
interface through which the loop (`train`), `bench` and evaluation use it without naming it.

The built-in methods (`supervised`, `wsrtl`, `clp`) are the modules of this package, each with
a `METHOD`; another is added with `register(name, method)`. No TensorFlow here, so that `bench`
runs without it.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Iterator

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipeline.errors import UserError

BUILT_IN = ("supervised", "wsrtl", "clp")


@dataclasses.dataclass(frozen=True)
class Method:
  """What a training method gives the loop, `bench` and evaluation.

  create(config, num_aus) -> (model, optimizer, state): the model and a fresh host state, with
      whatever extras the method keeps in it (a teacher, a queue).
  make_step(config, model, optimizer, schedule, au_weights) -> the per-device train step
      `(state, batch) -> (state, metrics)`, reducing over the mesh axis `data`; `au_weights` is
      None for a method without labels.
  train_inputs(config, data, builder, splits, mesh, start) -> this host's batches from step
      `start`; `data` is the streaming module (experiment.data_source).
  synthetic_batch(config, num_aus, rng) -> a host batch of the shapes the step consumes.
  images_per_step(config) -> frames the student sees per step.
  has_labels: whether it trains on AU labels; if so, checkpoints are chosen on validation and
      the run ends with the test split's metrics, else the latest checkpoint is the one.
  check_config(config): raises UserError for a config the method cannot train.
  write_samples(config, data, builder, splits, model, state, workdir) -> the path of the sample
      sheet (PNG) of the trained network, or None if the method draws none.
  evaluate_extras(config, builder, splits, model, state, which) -> extra fields of the
      evaluation's JSON (e.g. how much better than a trivial predictor the auxiliary tasks are).
  batch_keys: the config keys of the global batch sizes a step consumes (each must split over
      the devices).
  bench_extras(config, batch, mesh, step_seconds, timer) -> extra `bench` fields (e.g. the
      share of a part of the step), with `timer(fn, args)` giving seconds per call.
  """
  name: str
  create: Callable[[ml_collections.ConfigDict, int], tuple[Any, optax.GradientTransformation,
                                                           Any]]
  make_step: Callable[..., Callable]
  train_inputs: Callable[..., Iterator[dict]]
  synthetic_batch: Callable[[ml_collections.ConfigDict, int, np.random.Generator], dict]
  images_per_step: Callable[[ml_collections.ConfigDict], int]
  has_labels: bool = True
  check_config: Callable[[ml_collections.ConfigDict], None] = lambda config: None
  write_samples: Callable[..., str | None] = lambda *args: None
  evaluate_extras: Callable[..., dict] = lambda *args: {}
  batch_keys: tuple[str, ...] = ("global_batch_size",)
  bench_extras: Callable[..., dict] = lambda *args: {}


_REGISTERED: dict[str, Method] = {}


def register(name: str, method: Method) -> None:
  """Makes `method` available as `config.method=name`."""
  _REGISTERED[name] = method


def method_of(config: ml_collections.ConfigDict) -> str:
  """The config's `method`; configs without the key (earlier releases) are supervised."""
  return config.get("method", "supervised")


def get_method(config: ml_collections.ConfigDict) -> Method:
  """The `Method` the config names; UserError for a name that is neither built in nor
  registered, or a config the method cannot train."""
  name = method_of(config)
  if name not in _REGISTERED and name in BUILT_IN:
    register(name, importlib.import_module(f"wsrtl_jax.methods.{name}").METHOD)
  if name not in _REGISTERED:
    known = sorted(set(BUILT_IN) | set(_REGISTERED))
    raise UserError(f"unknown method '{name}'; choose one of {', '.join(known)}")
  method = _REGISTERED[name]
  method.check_config(config)
  return method


def check_method(config: ml_collections.ConfigDict) -> None:
  """Raises UserError naming a method that does not exist or cannot train this config."""
  get_method(config)


def needs_section(config: ml_collections.ConfigDict, example: str) -> None:
  """For a method whose config needs its own section and model (`method` both): a UserError
  naming the example config to start from."""
  name = method_of(config)
  if name not in config or config.model.get("name") != name:
    raise UserError(f"method '{name}' needs the config's `{name}` section and "
                    f"model.name='{name}' (start from {example})")


def create(config: ml_collections.ConfigDict, num_aus: int):
  """(model, optimizer, state) of `config.method`, the state on the host."""
  return get_method(config).create(config, num_aus)


def make_step(config: ml_collections.ConfigDict, model, optimizer: optax.GradientTransformation,
              schedule: optax.Schedule, au_weights: jnp.ndarray | None) -> Callable:
  """The per-device train step of `config.method`."""
  return get_method(config).make_step(config, model, optimizer, schedule, au_weights)


def images_per_step(config: ml_collections.ConfigDict) -> int:
  """Frames the student of `config.method` sees per step."""
  return get_method(config).images_per_step(config)
