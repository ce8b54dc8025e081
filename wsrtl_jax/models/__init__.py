"""Models, picked by name from the config."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from wsrtl_jax.errors import UserError
from wsrtl_jax.models.resnet import BACKBONES, ResNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class AUDetector(nn.Module):
  """Backbone + AU head: globally pooled last-stage feature, one logit per AU."""
  backbone: nn.Module
  num_aus: int

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    feature = self.backbone(images, train=train)[-1]
    pooled = jnp.mean(feature.astype(jnp.float32), axis=(1, 2))
    return nn.Dense(self.num_aus, dtype=jnp.float32, name="au_head")(pooled)


def check_model_config(config: ml_collections.ConfigDict) -> None:
  """Raises UserError naming a backbone or dtype that does not exist."""
  if config.model.backbone not in BACKBONES:
    raise UserError(f"unknown model.backbone '{config.model.backbone}'; "
                     f"choose one of {', '.join(BACKBONES)}")
  if config.model.dtype not in DTYPES:
    raise UserError(f"unknown model.dtype '{config.model.dtype}'; "
                     f"choose one of {', '.join(DTYPES)}")


def build_model(config: ml_collections.ConfigDict, num_aus: int,
                bn_axis_name: str | None = "data") -> AUDetector:
  """The AU detector the config names; BatchNorm syncs over `bn_axis_name`."""
  check_model_config(config)
  backbone = ResNet(**BACKBONES[config.model.backbone], width=config.model.width,
                    dtype=DTYPES[config.model.dtype], bn_axis_name=bn_axis_name)
  return AUDetector(backbone=backbone, num_aus=num_aus)
