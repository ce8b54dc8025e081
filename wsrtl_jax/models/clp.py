"""The CLP network (Li & Shan, TIP 2023): a backbone with a projection head to an AU code (the
representation that contrastive learning shapes and that linear evaluation reads), and a decoder
that rebuilds a face from an AU code and another face, the identity, by moving that face's pixels
(for cross-identity reconstruction).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from wsrtl_jax import flow
from wsrtl_jax.batch_ops import pool_to, upsample_nearest
from wsrtl_jax.models.resnet import normalize_image


class ProjectionHead(nn.Module):
  """MoCo v2's MLP head: Dense - ReLU - Dense, in float32."""
  hidden_dim: int
  out_dim: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    return nn.Dense(self.out_dim)(nn.relu(nn.Dense(self.hidden_dim)(x)))


class FlowDecoder(nn.Module):
  """(AU code of a source face, AU code of a target face) [B, D] each -> flow [B, S/2, S/2, 2]
  (pixels at S/2) that moves the source towards the target: a dense layer to an S/32 map, then
  one nearest-upsample and 3x3 convolution per width, and a zero-initialised 3x3 convolution to
  (x, y), so that training starts from the identity warp."""
  widths: Sequence[int]
  image_size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, source_au: jnp.ndarray, target_au: jnp.ndarray) -> jnp.ndarray:
    side = max(self.image_size // 2 // 2 ** len(self.widths), 1)
    x = nn.Dense(side * side * self.widths[0], dtype=self.dtype)(
        jnp.concatenate([source_au, target_au], axis=-1))
    x = nn.relu(x.reshape(x.shape[0], side, side, self.widths[0]))
    for width in self.widths:
      x = upsample_nearest(x, 2 * x.shape[1], 2 * x.shape[2])
      x = nn.relu(nn.Conv(width, (3, 3), dtype=self.dtype)(x))
    x = jax.image.resize(x, (x.shape[0], self.image_size // 2, self.image_size // 2, x.shape[-1]),
                         "linear")
    return nn.Conv(2, (3, 3), kernel_init=nn.initializers.zeros, dtype=jnp.float32)(x)


class CLPNet(nn.Module):
  """Backbone -> pooled feature -> AU code; a decoder that rebuilds a face from the AU code it
  should show and another face (the identity), by moving that face's pixels.

  The identity of a frame is its own pixels at half size together with its AU code, which says
  where its features are; the flow decoder turns a pair of AU codes into the motion from one
  configuration to the other. The appearance comes from the identity frame's pixels, so the AU
  code only has to carry the face's configuration, the same for any person.

  `__call__` gives the AU code (the frozen representation of linear evaluation); `decode` rebuilds
  faces; `train_outputs` runs both, so that `init` creates every parameter.
  """
  backbone: nn.Module
  code_dim: int = 128
  image_size: int = 96  # The input side; the decoder rebuilds at half of it.
  decoder_widths: Sequence[int] = (64, 64, 32, 16)
  dtype: Any = jnp.float32

  def setup(self):
    self.au_head = ProjectionHead(self.code_dim * 2, self.code_dim)
    self.flow_decoder = FlowDecoder(self.decoder_widths, self.image_size, dtype=self.dtype)

  def __call__(self, images: jnp.ndarray, au_centres: jnp.ndarray | None = None,
               train: bool = False) -> jnp.ndarray:
    """uint8 or 0-255 float faces [B, S, S, 3] -> the AU code [B, D]; `au_centres` is not used
    (the interface is the AU models')."""
    pooled = jnp.mean(self.backbone(images, train=train)[-1].astype(jnp.float32), axis=(1, 2))
    return self.au_head(pooled)

  def decode(self, au_code: jnp.ndarray, identity_faces: jnp.ndarray,
             identity_au: jnp.ndarray) -> jnp.ndarray:
    """The identity faces (normalised pixels [B, S/2, S/2, 3]) moved from their AU codes
    `identity_au` to `au_code`: normalised pixels at S/2."""
    return flow.warp(identity_faces, self.flow_decoder(identity_au, au_code))

  def train_outputs(self, images: jnp.ndarray, au_centres: jnp.ndarray | None = None,
                    train: bool = True) -> dict[str, jnp.ndarray]:
    au_code = self(images, train=train)
    half = pool_to(normalize_image(images, jnp.float32), self.image_size // 2)
    return {"au_code": au_code, "reconstruction": self.decode(au_code, half, au_code)}


def build(config: ml_collections.ConfigDict, num_aus: int, backbone: nn.Module,
          dtype) -> CLPNet:
  """CLPNet with `model.code_dim` (it reads no AU labels: `num_aus` is not used)."""
  return CLPNet(backbone=backbone, code_dim=config.model.code_dim,
                image_size=config.data.image_size, dtype=dtype)
