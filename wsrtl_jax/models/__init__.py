"""Models, picked by name from the config (`model.name`)."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from data_pipeline.au_sets import CENTRE_AUS, aus_of
from data_pipeline.errors import UserError
from wsrtl_jax.models.resnet import BACKBONES, ResNet
from wsrtl_jax.models.clp import CLPNet
from wsrtl_jax.models.wsrtl import WSRTLNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MODELS = ("au_detector", "wsrtl", "clp")


class AUDetector(nn.Module):
  """Backbone + AU head: globally pooled last-stage feature, one logit per AU."""
  backbone: nn.Module
  num_aus: int

  @nn.compact
  def __call__(self, images: jnp.ndarray, au_centres: jnp.ndarray | None = None,
               train: bool = False) -> jnp.ndarray:
    """AU logits; `au_centres` is not used (the interface is WSRTLNet's)."""
    feature = self.backbone(images, train=train)[-1]
    pooled = jnp.mean(feature.astype(jnp.float32), axis=(1, 2))
    return nn.Dense(self.num_aus, dtype=jnp.float32, name="au_head")(pooled)


def check_model_config(config: ml_collections.ConfigDict) -> None:
  """Raises UserError naming a model, backbone or dtype that does not exist."""
  for key, known in (("name", MODELS), ("backbone", BACKBONES), ("dtype", DTYPES)):
    value = config.model.get(key, MODELS[0])
    if value not in known:
      raise UserError(f"unknown model.{key} '{value}'; choose one of {', '.join(known)}")


def build_model(config: ml_collections.ConfigDict, num_aus: int,
                bn_axis_name: str | None = "data") -> nn.Module:
  """The model the config names; BatchNorm syncs over `bn_axis_name`."""
  check_model_config(config)
  dtype = DTYPES[config.model.dtype]
  backbone = ResNet(**BACKBONES[config.model.backbone], width=config.model.width,
                    dtype=dtype, bn_axis_name=bn_axis_name)
  name = config.model.get("name", MODELS[0])
  if name == "au_detector":
    return AUDetector(backbone=backbone, num_aus=num_aus)
  if name == "clp":
    return CLPNet(backbone=backbone, code_dim=config.model.code_dim,
                  image_size=config.data.image_size, dtype=dtype)
  aus = aus_of(config.data.name)
  if len(aus) != num_aus or any(au not in CENTRE_AUS for au in aus):
    raise UserError(f"model.name=wsrtl needs an AU centre for every AU of {config.data.name} "
                    f"{aus}; centres exist for {CENTRE_AUS}")
  m = config.model
  return WSRTLNet(backbone=backbone, num_aus=num_aus,
                  token_aus=tuple(CENTRE_AUS.index(au) for au in aus),
                  token_stage=m.token_stage, token_dim=m.token_dim,
                  relation_layers=m.relation_layers, relation_heads=m.relation_heads,
                  inpaint_upsamples=m.inpaint_upsamples,
                  dtype=dtype)
