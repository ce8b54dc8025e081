"""The geometry of the training crop, with no TensorFlow: its side, and where a frame's points
land once it is resized to the network input (numpy or TensorFlow arrays alike)."""
from __future__ import annotations

import ml_collections


def crop_size(frame_size: int, config: ml_collections.ConfigDict) -> int:
  """Side of the crop the host ships; the accelerator resizes it to `config.image_size`."""
  return int(round(frame_size * config.crop_fraction))


def to_input_pixels(points, top_left, crop: int, size: int):
  """Frame pixel coordinates (x, y) -> where they land once the crop at `top_left` (x, y) is
  resized from `crop` to `size` (bilinear, pixel centres at +0.5); numpy or TensorFlow."""
  return (points - top_left + 0.5) / (crop / size) - 0.5
