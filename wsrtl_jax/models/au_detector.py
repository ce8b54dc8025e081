"""The AU detector: a backbone and a linear AU head on its globally pooled last stage (the
supervised baseline's network)."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import ml_collections


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


def build(config: ml_collections.ConfigDict, num_aus: int, backbone: nn.Module,
          dtype) -> AUDetector:
  return AUDetector(backbone=backbone, num_aus=num_aus)
