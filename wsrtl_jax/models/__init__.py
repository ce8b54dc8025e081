"""Models, looked up by the config's `model.name`: the modules of this package with a
`build(config, num_aus, backbone, dtype)` (`au_detector`, `wsrtl`, `clp`), or another added with
`register(name, build)`. Every model shares the configured ResNet backbone."""
from __future__ import annotations

import importlib
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from data_pipeline.errors import UserError
from wsrtl_jax.models.resnet import BACKBONES, PADDINGS, ResNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
BUILT_IN = ("au_detector", "wsrtl", "clp")
_REGISTERED: dict[str, Callable[..., nn.Module]] = {}


def register(name: str, build: Callable[..., nn.Module]) -> None:
  """Makes `build(config, num_aus, backbone, dtype)` available as `model.name=name`."""
  _REGISTERED[name] = build


def _names() -> list[str]:
  return list(BUILT_IN) + [n for n in _REGISTERED if n not in BUILT_IN]


def padding_of(config: ml_collections.ConfigDict) -> str:
  """The backbone's `model.padding` (configs from before the setting pad "same")."""
  return config.model.get("padding", "same")


def check_model_config(config: ml_collections.ConfigDict) -> None:
  """Raises UserError naming a model, backbone or dtype that does not exist."""
  for key, known, default in (("name", _names(), BUILT_IN[0]), ("backbone", BACKBONES, None),
                              ("dtype", DTYPES, None), ("padding", PADDINGS, "same")):
    value = config.model.get(key, default)
    if value not in known:
      raise UserError(f"unknown model.{key} '{value}'; choose one of {', '.join(known)}")


def build_model(config: ml_collections.ConfigDict, num_aus: int,
                bn_axis_name: str | None = "data") -> nn.Module:
  """The model the config names; BatchNorm syncs over `bn_axis_name`."""
  check_model_config(config)
  dtype = DTYPES[config.model.dtype]
  backbone = ResNet(**BACKBONES[config.model.backbone], width=config.model.width,
                    dtype=dtype, bn_axis_name=bn_axis_name,
                    padding=padding_of(config))
  name = config.model.get("name", BUILT_IN[0])
  if name not in _REGISTERED:
    register(name, importlib.import_module(f"wsrtl_jax.models.{name}").build)
  return _REGISTERED[name](config, num_aus, backbone, dtype)
