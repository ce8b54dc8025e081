"""Pixel operations on the accelerator: what each colour jitter parameter does, per unit; the
decoders' nearest upsampling agrees with jax.image.resize, values and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsrtl_jax.batch_ops import upsample_nearest
from wsrtl_jax.image_ops import colour_jitter


def test_colour_jitter_parameters():
  rng = np.random.default_rng(0)
  images = rng.integers(30, 220, (4, 2, 8, 8, 3), dtype=np.uint8)  # 4 clips of 2 frames.
  jitter = np.array([[0, 1, 1], [20, 1, 1], [0, 0, 1], [0, 1, 0]], np.float32)
  out = np.asarray(colour_jitter(jnp.asarray(images), jnp.asarray(jitter)))
  x = images.astype(np.float32)
  np.testing.assert_allclose(out[0], x[0], atol=1e-4)  # Identity.
  np.testing.assert_allclose(out[1], np.minimum(x[1] + 20, 255), atol=1e-4)  # Brightness.
  np.testing.assert_allclose(out[2], np.broadcast_to(x[2].mean((0, 1, 2)), x[2].shape),
                             atol=1e-3)  # No contrast: the clip's mean colour everywhere.
  grey = (x[3] * [0.299, 0.587, 0.114]).sum(-1)
  np.testing.assert_allclose(out[3], np.repeat(grey[..., None], 3, -1), atol=1e-3)  # Grey.
  assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255


@pytest.mark.parametrize("size,target", [((3, 4), (6, 8)), ((2, 3), (6, 3)), ((3, 3), (6, 9))])
def test_upsample_nearest_matches_resize_in_values_and_gradients(size, target):
  x = jax.random.normal(jax.random.key(0), (2, *size, 5))
  weights = jax.random.normal(jax.random.key(1), (2, *target, 5))
  ours = lambda x: jnp.sum(upsample_nearest(x, *target) * weights)
  resized = lambda x: jnp.sum(jax.image.resize(x, (2, *target, 5), "nearest") * weights)
  np.testing.assert_array_equal(upsample_nearest(x, *target),
                                jax.image.resize(x, (2, *target, 5), "nearest"))
  np.testing.assert_allclose(jax.grad(ours)(x), jax.grad(resized)(x), rtol=1e-5, atol=1e-5)
