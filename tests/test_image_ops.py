"""Colour jitter on the accelerator: what each parameter does, per unit."""
import jax.numpy as jnp
import numpy as np

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
