"""Pixel operations that run on the accelerator, inside the jitted step: the end of the input
augmentation, which the host leaves undone because here it is nearly free."""
from __future__ import annotations

import jax
import jax.numpy as jnp

_LUMA = jnp.array([0.299, 0.587, 0.114])


def colour_jitter(images: jnp.ndarray, jitter: jnp.ndarray) -> jnp.ndarray:
  """uint8 images [B, ..., H, W, 3] and per-unit (brightness offset, contrast, saturation) [B, 3]
  -> float32 in [0, 255]. Contrast scales about the unit's mean colour, saturation blends with
  the luma grey, brightness adds; XLA fuses this with the model's input normalisation."""
  x = images.astype(jnp.float32)  # A no-op on float input.
  shape = (-1,) + (1,) * (x.ndim - 1)
  brightness, contrast, saturation = (jitter[:, k].reshape(shape) for k in range(3))
  mean = x.mean(axis=tuple(range(1, x.ndim - 1)), keepdims=True)
  x = (x - mean) * contrast + mean + brightness
  grey = (x * _LUMA).sum(-1, keepdims=True)
  return jnp.clip(grey + (x - grey) * saturation, 0.0, 255.0)


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
