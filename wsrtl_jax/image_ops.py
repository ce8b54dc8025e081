"""Pixel operations that run on the accelerator, inside the jitted step: the end of the input
augmentation, which the host leaves undone because here it is nearly free."""
from __future__ import annotations

import jax
import jax.numpy as jnp

_LUMA = jnp.array([0.299, 0.587, 0.114])


def colour_jitter(images: jnp.ndarray, jitter: jnp.ndarray) -> jnp.ndarray:
  """uint8 images [B, ..., H, W, 3] and per-unit (brightness offset, contrast, saturation) [B, 3]
  -> float32 in [0, 255]. Contrast scales about the unit's mean colour, brightness adds,
  saturation blends with the luma grey: together one affine colour map per unit, applied with
  the channel mix unrolled (a reduction over the 3 channels is slow on XLA:CPU)."""
  x = images.astype(jnp.float32)  # A no-op on float input.
  brightness, contrast, saturation = jitter[:, 0], jitter[:, 1], jitter[:, 2]
  blend = (saturation[:, None, None] * jnp.eye(3)
           + (1 - saturation)[:, None, None] * jnp.ones((3, 1)) * _LUMA)  # [B, 3, 3]
  mean = x.mean(axis=tuple(range(1, x.ndim - 1)))  # [B, 3]
  offset = jnp.einsum("bij,bj->bi", blend, (1 - contrast)[:, None] * mean + brightness[:, None])
  matrix = contrast[:, None, None] * blend
  shape = (-1,) + (1,) * (x.ndim - 2) + (3,)
  y = sum(x[..., k:k + 1] * matrix[:, :, k].reshape(shape) for k in range(3))
  return jnp.clip(y + offset.reshape(shape), 0.0, 255.0)


def finish_images(images: jnp.ndarray, flip: jnp.ndarray, jitter: jnp.ndarray,
                  size: int) -> jnp.ndarray:
  """The host's crops uint8 [B, ..., C, C, 3], each unit's `flip` [B] and `jitter` [B, 3] ->
  float32 [B, ..., size, size, 3] in [0, 255]: resized (bilinear, pixel centres at +0.5, as the
  host moved the landmarks), mirrored, colour-jittered."""
  x = images.astype(jnp.float32)
  if x.shape[-2] != size:
    x = jax.image.resize(x, (*x.shape[:-3], size, size, 3), "linear", antialias=False)
  x = jnp.where(flip.reshape((-1,) + (1,) * (x.ndim - 1)), x[..., ::-1, :], x)
  return colour_jitter(x, jitter)
