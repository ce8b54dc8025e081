"""The WSRTL network: a backbone, AU tokens with the AU relation embedding, the AU head, and the
two light decoders of the auxiliary tasks (RoI inpainting, single-image flow).

AU tokens are the backbone's features at the AU centres (two per AU, averaged) plus a learned
embedding per AU; a transformer encoder across the AU tokens relates them (the AU relation
embedding). The AU head reads each AU's token and the globally pooled feature. The inpainting
decoder sees the relation-embedded tokens splatted back at their centres, so an AU whose region
is masked can be recovered from the AUs it co-occurs with.

Sampling at and splatting to the centres use the same bilinear ("tent") weights as a dense
[points, H, W] matrix: einsums instead of gathers and scatters, which map to matrix units.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from data_pipeline.au_sets import CENTRE_AUS, aus_of
from data_pipeline.errors import UserError
from wsrtl_jax.batch_ops import upsample_nearest
from wsrtl_jax.models.resnet import IMAGE_MEAN, IMAGE_STD


def tent_weights(points: jnp.ndarray, height: int, width: int, stride: int) -> jnp.ndarray:
  """Bilinear weights [B, P, height, width] of image points [B, P, 2] (x, y; pixel centres at
  integers) on a feature map of `stride`, whose cell j is centred on pixel j * stride +
  (stride - 1) / 2. Points outside the map get weight on the nearest border cells only."""
  cell = (points - (stride - 1) / 2.0) / stride
  cell = jnp.stack([jnp.clip(cell[..., 0], 0, width - 1), jnp.clip(cell[..., 1], 0, height - 1)],
                   axis=-1)
  wx = jnp.maximum(0.0, 1.0 - jnp.abs(jnp.arange(width) - cell[..., 0:1]))  # [B, P, W]
  wy = jnp.maximum(0.0, 1.0 - jnp.abs(jnp.arange(height) - cell[..., 1:2]))  # [B, P, H]
  return wy[..., :, None] * wx[..., None, :]


class RelationEncoder(nn.Module):
  """Pre-norm transformer encoder across the AU tokens [B, A, D]."""
  num_layers: int
  num_heads: int
  mlp_ratio: int = 2

  @nn.compact
  def __call__(self, tokens: jnp.ndarray) -> jnp.ndarray:
    dim = tokens.shape[-1]
    for _ in range(self.num_layers):
      y = nn.LayerNorm()(tokens)
      tokens = tokens + nn.MultiHeadDotProductAttention(num_heads=self.num_heads)(y, y)
      y = nn.LayerNorm()(tokens)
      y = nn.Dense(dim)(nn.gelu(nn.Dense(dim * self.mlp_ratio)(y)))
      tokens = tokens + y
    return nn.LayerNorm()(tokens)


class UpDecoder(nn.Module):
  """Top-down decoder over the backbone stages (strides 4, 8, 16, 32): from the last stage it
  upsamples by 2, concatenates the next stage, and convolves, down to stride 4, then upsamples
  `extra_upsamples` more times; an optional map is concatenated at stage `inject_stage`. Ends in a
  3x3 convolution to `out_channels`, in float32."""
  widths: Sequence[int]  # Channels after stages 3, 2, 1, 0, then after each extra upsample.
  out_channels: int
  extra_upsamples: int = 0
  inject_stage: int = -1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: Sequence[jnp.ndarray], inject: jnp.ndarray | None = None
               ) -> jnp.ndarray:
    widths = list(self.widths)
    x = None
    for stage in range(len(features) - 1, -1, -1):
      skip = features[stage].astype(self.dtype)
      if x is None:
        x = skip
      else:
        x = upsample_nearest(x, *skip.shape[1:3])
        x = jnp.concatenate([x, skip], axis=-1)
      if stage == self.inject_stage and inject is not None:
        x = jnp.concatenate([x, inject.astype(self.dtype)], axis=-1)
      x = nn.relu(nn.Conv(widths.pop(0), (3, 3), dtype=self.dtype)(x))
    for _ in range(self.extra_upsamples):
      x = upsample_nearest(x, 2 * x.shape[1], 2 * x.shape[2])
      x = nn.relu(nn.Conv(widths.pop(0), (3, 3), dtype=self.dtype)(x))
    return nn.Conv(self.out_channels, (3, 3), dtype=jnp.float32)(x).astype(jnp.float32)


class WSRTLNet(nn.Module):
  """Backbone + AU tokens + relation encoder + AU head, with the inpainting and flow decoders.

  `__call__` is inference (AU logits from intact faces); `train_outputs` adds what the auxiliary
  losses need. `token_aus` indexes, for each output AU, its centres in the centre table that the
  pipeline streams (data_pipeline.au_sets.CENTRE_AUS).
  """
  backbone: nn.Module
  num_aus: int
  token_aus: Sequence[int]
  token_stage: int = 1  # Backbone stage (0-3, strides 4-32) that the tokens are read from.
  token_dim: int = 128
  relation_layers: int = 2
  relation_heads: int = 4
  inpaint_upsamples: int = 1  # Past stride 4: the reconstruction is at 1/2 (1) or full (2) size.
  decoder_widths: Sequence[int] = (96, 64, 48, 32, 16, 16)
  flow_widths: Sequence[int] = (64, 48, 32, 32)
  dtype: Any = jnp.float32

  def setup(self):
    self.token_proj = nn.Dense(self.token_dim, name="token_proj")
    self.au_embedding = self.param("au_embedding", nn.initializers.normal(0.02),
                                   (self.num_aus, self.token_dim))
    self.relation = RelationEncoder(self.relation_layers, self.relation_heads)
    self.global_head = nn.Dense(self.num_aus, name="au_head")
    self.token_head = self.param("token_head", nn.initializers.lecun_normal(),
                                 (self.num_aus, self.token_dim))
    self.inpaint_decoder = UpDecoder(self.decoder_widths, 3,
                                     extra_upsamples=self.inpaint_upsamples,
                                     inject_stage=self.token_stage, dtype=self.dtype)
    self.flow_decoder = UpDecoder(self.flow_widths, 2, dtype=self.dtype)

  def _centres(self, au_centres: jnp.ndarray) -> jnp.ndarray:
    """[B, C, 2, 2] streamed centres -> [B, 2A, 2] points of this model's AUs."""
    picked = au_centres[:, jnp.asarray(self.token_aus)]
    return picked.reshape(picked.shape[0], -1, 2).astype(jnp.float32)

  def _encode(self, images, au_centres, train):
    features = self.backbone(images, train=train)
    fmap = features[self.token_stage]
    stride = images.shape[1] // fmap.shape[1]
    weights = tent_weights(self._centres(au_centres), fmap.shape[1], fmap.shape[2], stride)
    sampled = jnp.einsum("bphw,bhwc->bpc", weights, fmap.astype(jnp.float32))
    sampled = sampled.reshape(sampled.shape[0], self.num_aus, 2, -1).mean(axis=2)
    tokens = self.relation(self.token_proj(sampled) + self.au_embedding)
    pooled = jnp.mean(features[-1].astype(jnp.float32), axis=(1, 2))
    logits = self.global_head(pooled) + jnp.einsum("bad,ad->ba", tokens, self.token_head)
    return features, weights, tokens, logits

  def __call__(self, images: jnp.ndarray, au_centres: jnp.ndarray, train: bool = False
               ) -> jnp.ndarray:
    """uint8 or 0-255 float faces [B, S, S, 3] and their AU centres -> AU logits [B, A]."""
    return self._encode(images, au_centres, train)[-1]

  def train_outputs(self, images: jnp.ndarray, au_centres: jnp.ndarray, train: bool = True,
                    decode_from: int = 0, reconstruct: bool = True, predict_flow: bool = True
                    ) -> dict[str, jnp.ndarray]:
    """AU logits of every image; for images `decode_from:`, if asked, the reconstruction
    [S/2, S/2, 3] or [S, S, 3] (normalised pixels, see `inpaint_upsamples`) and the flow
    [S/4, S/4, 2] (input pixels) they predict."""
    features, weights, tokens, logits = self._encode(images, au_centres, train)
    tail = [f[decode_from:] for f in features]
    out = {"logits": logits}
    if reconstruct:
      per_point = jnp.repeat(tokens[decode_from:], 2, axis=1)  # [B', 2A, D]
      splat = jnp.einsum("bphw,bpd->bhwd", weights[decode_from:], per_point)
      out["reconstruction"] = self.inpaint_decoder(tail, splat)
    if predict_flow:
      out["flow"] = self.flow_decoder(tail)
    return out

def denormalize(pixels: jnp.ndarray) -> jnp.ndarray:
  """The decoder's normalised pixels -> 0-255 images."""
  return jnp.clip(pixels * IMAGE_STD + IMAGE_MEAN, 0.0, 255.0)


def build(config: ml_collections.ConfigDict, num_aus: int, backbone: nn.Module,
          dtype) -> WSRTLNet:
  """WSRTLNet with a token for every AU of `data.name`; UserError where an AU has no centre."""
  aus = aus_of(config.data.name)
  if len(aus) != num_aus or any(au not in CENTRE_AUS for au in aus):
    raise UserError(f"model.name=wsrtl needs an AU centre for every AU of {config.data.name} "
                    f"{aus}; centres exist for {CENTRE_AUS}")
  m = config.model
  return WSRTLNet(backbone=backbone, num_aus=num_aus,
                  token_aus=tuple(CENTRE_AUS.index(au) for au in aus),
                  token_stage=m.token_stage, token_dim=m.token_dim,
                  relation_layers=m.relation_layers, relation_heads=m.relation_heads,
                  inpaint_upsamples=m.inpaint_upsamples, dtype=dtype)
