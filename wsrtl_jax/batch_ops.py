"""Helpers of the per-device steps that keep a run independent of how many devices share the
global batch: random draws made for the whole batch, and means over the whole batch."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from wsrtl_jax.parallel import AXIS


def uniform_rows(key: jax.Array, rows: int, columns: int) -> jnp.ndarray:
  """This device's `rows` of a [global batch, columns] uniform draw: every device draws the
  whole batch from the same key and keeps its slice, so the run does not depend on how many
  devices share the batch."""
  devices = jax.lax.psum(1, AXIS)
  draw = jax.random.uniform(key, (devices * rows, columns))
  return jax.lax.dynamic_slice_in_dim(draw, jax.lax.axis_index(AXIS) * rows, rows)


def global_mean(local_sum: jnp.ndarray, local_count: jnp.ndarray) -> jnp.ndarray:
  """This device's share of the mean over every device: summing it over devices gives the mean."""
  return local_sum / jnp.maximum(jax.lax.psum(local_count, AXIS), 1.0)


def pool_to(images: jnp.ndarray, side: int) -> jnp.ndarray:
  """Averages [B, S, S, C] over cells down to [B, side, side, C] (S a multiple of side)."""
  b, s, _, c = images.shape
  k = s // side
  return images.reshape(b, side, k, side, k, c).mean(axis=(2, 4))


def upsample_nearest(x: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """[B, h, w, C] -> [B, height, width, C], as `jax.image.resize(..., "nearest")`. Whole factors
  repeat each cell by broadcasting, whose gradient is a sum over the copies rather than the
  scatter-add that resize's gather differentiates to (slow on GPU)."""
  b, h, w, c = x.shape
  if height % h or width % w:
    return jax.image.resize(x, (b, height, width, c), "nearest")
  fy, fx = height // h, width // w
  return jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, fy, w, fx, c)).reshape(
      b, height, width, c)


def global_value_and_grad(loss_fn, params):
  """`jax.value_and_grad(loss_fn, has_aux=True)(params)` where `loss_fn` returns this device's
  share of the global loss: each device differentiates its share with the parameters cast to
  device-varying (otherwise shard_map would already sum the gradients of the replicated
  parameters over devices), then the gradients are summed over devices, the same under
  `jax.shard_map` and `jax.pmap`."""
  out, grads = jax.value_and_grad(loss_fn, has_aux=True)(jax.lax.pcast(params, AXIS, to="varying"))
  return out, jax.lax.psum(grads, AXIS)
