"""The CLP network (Li & Shan, TIP 2023): a backbone with two projection heads, one to an AU code
(the representation that contrastive learning shapes and that linear evaluation reads) and one to
an identity code, and a decoder that rebuilds a face from an AU code and an identity code (for
cross-identity reconstruction).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class ProjectionHead(nn.Module):
  """MoCo v2's MLP head: Dense - ReLU - Dense, in float32."""
  hidden_dim: int
  out_dim: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    return nn.Dense(self.out_dim)(nn.relu(nn.Dense(self.hidden_dim)(x)))


class CodeDecoder(nn.Module):
  """(AU code, identity code) -> normalised pixels [S/2, S/2, 3]: a dense layer to an S/32 map,
  then one nearest-upsample and 3x3 convolution per width, then a 3x3 convolution to RGB."""
  widths: Sequence[int]
  image_size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, au_code: jnp.ndarray, identity_code: jnp.ndarray) -> jnp.ndarray:
    side = max(self.image_size // 2 // 2 ** len(self.widths), 1)
    x = nn.Dense(side * side * self.widths[0], dtype=self.dtype)(
        jnp.concatenate([au_code, identity_code], axis=-1))
    x = nn.relu(x.reshape(x.shape[0], side, side, self.widths[0]))
    for width in self.widths:
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")
      x = nn.relu(nn.Conv(width, (3, 3), dtype=self.dtype)(x))
    x = jax.image.resize(x, (x.shape[0], self.image_size // 2, self.image_size // 2, x.shape[-1]),
                         "linear")
    return nn.Conv(3, (3, 3), dtype=jnp.float32)(x).astype(jnp.float32)


class CLPNet(nn.Module):
  """Backbone -> pooled feature -> AU code and identity code; decoder from the two codes.

  `__call__` gives the AU code (the frozen representation of linear evaluation); `codes` gives
  both codes; `decode` rebuilds faces; `train_outputs` runs all three, so that `init` creates
  every parameter.
  """
  backbone: nn.Module
  code_dim: int = 128
  image_size: int = 96  # The input side; the decoder rebuilds at half of it.
  decoder_widths: Sequence[int] = (128, 64, 32, 16)
  dtype: Any = jnp.float32

  def setup(self):
    self.au_head = ProjectionHead(self.code_dim * 2, self.code_dim)
    self.identity_head = ProjectionHead(self.code_dim * 2, self.code_dim)
    self.decoder = CodeDecoder(self.decoder_widths, self.image_size, dtype=self.dtype)

  def codes(self, images: jnp.ndarray, train: bool = False,
            identity: bool = True) -> tuple[jnp.ndarray, jnp.ndarray | None]:
    """uint8 or 0-255 float faces [B, S, S, 3] -> AU code [B, D] and (if asked) identity code."""
    pooled = jnp.mean(self.backbone(images, train=train)[-1].astype(jnp.float32), axis=(1, 2))
    return self.au_head(pooled), self.identity_head(pooled) if identity else None

  def decode(self, au_code: jnp.ndarray, identity_code: jnp.ndarray) -> jnp.ndarray:
    return self.decoder(au_code, identity_code)

  def __call__(self, images: jnp.ndarray, au_centres: jnp.ndarray | None = None,
               train: bool = False) -> jnp.ndarray:
    """The AU code [B, D]; `au_centres` is not used (the interface is the AU models')."""
    return self.codes(images, train, identity=False)[0]

  def train_outputs(self, images: jnp.ndarray, au_centres: jnp.ndarray | None = None,
                    train: bool = True) -> dict[str, jnp.ndarray]:
    au_code, identity_code = self.codes(images, train)
    return {"au_code": au_code, "identity_code": identity_code,
            "reconstruction": self.decode(au_code, identity_code)}
