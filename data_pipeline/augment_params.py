"""The host's augmentation parameters, with no TensorFlow, for the tf.data streams, the
generator's stream and the device's second views alike: the training crop's side, where a
frame's points land once it is resized to the network input, and the colour jitter's range."""
from __future__ import annotations

import ml_collections
import numpy as np


def crop_size(frame_size: int, config: ml_collections.ConfigDict) -> int:
  """Side of the crop the host ships; the accelerator resizes it to `config.image_size`."""
  return int(round(frame_size * config.crop_fraction))


def to_input_pixels(points, top_left, crop: int, size: int):
  """Frame pixel coordinates (x, y) -> where they land once the crop at `top_left` (x, y) is
  resized from `crop` to `size` (bilinear, pixel centres at +0.5); numpy or TensorFlow."""
  return (points - top_left + 0.5) / (crop / size) - 0.5


def jitter_bounds(strength: float) -> tuple[np.ndarray, np.ndarray]:
  """(low, high) [3] of colour jitter of `strength`, in the order that
  wsrtl_jax.image_ops.colour_jitter takes: brightness offset (grey levels), contrast and
  saturation factors."""
  s = float(strength)
  return np.array([-127.5 * s, 1 - s, 1 - s]), np.array([127.5 * s, 1 + s, 1 + s])
