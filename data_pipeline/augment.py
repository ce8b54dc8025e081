"""Per-frame preprocessing in tf: crop, resize, flip with landmark reflection, colour jitter.

Training randomness is stateless, seeded by (seed, position in the stream), so it is the same
whatever the threading and however the stream was resumed.
"""
from __future__ import annotations

import ml_collections
import tensorflow as tf

from data_pipeline.landmarks import FLIP_PERMUTATION


def _crop_resize(image, landmarks, top, left, crop: int, size: int):
  """Crops a square of side `crop` at (top, left) and resizes it to `size`; landmarks follow.

  Landmarks are in pixel-centre coordinates (x = 0 is the centre of the first column).
  """
  image = tf.image.crop_to_bounding_box(image, top, left, crop, crop)
  image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
  scale = size / crop
  offset = tf.cast(tf.stack([left, top]), tf.float32)
  landmarks = (landmarks - offset + 0.5) * scale - 0.5
  return image, landmarks


def _flip(image, landmarks, size: int):
  image = tf.image.flip_left_right(image)
  landmarks = tf.gather(landmarks, FLIP_PERMUTATION)
  landmarks = tf.stack([size - 1.0 - landmarks[:, 0], landmarks[:, 1]], axis=1)
  return image, landmarks


def _output(image, landmarks, example) -> dict:
  return {"image": tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8),
          "landmarks": landmarks,
          "label": tf.cast(example["au_occurrence"], tf.int32)}


def train_example(index, example: dict, *, frame_size: int, config: ml_collections.ConfigDict,
                  seed: int) -> dict:
  """Random crop, flip and colour jitter; AU labels are bilateral, so a flip keeps them."""
  seeds = tf.random.experimental.stateless_split(
      tf.stack([tf.cast(seed, tf.int64), index]), num=5)
  image = tf.cast(tf.io.decode_jpeg(example["image"], channels=3), tf.float32)
  crop = int(round(frame_size * config.crop_fraction))
  top_left = tf.random.stateless_uniform([2], seeds[0], 0, frame_size - crop + 1, tf.int32)
  image, landmarks = _crop_resize(image, example["landmarks"], top_left[0], top_left[1], crop,
                                  config.image_size)
  if config.flip:
    flipped = tf.random.stateless_uniform([], seeds[1]) < 0.5
    image, landmarks = tf.cond(flipped, lambda: _flip(image, landmarks, config.image_size),
                               lambda: (image, landmarks))
  if config.color_jitter > 0:
    s = config.color_jitter
    image = tf.image.stateless_random_brightness(image, 255.0 * s * 0.5, seeds[2])
    image = tf.image.stateless_random_contrast(image, 1 - s, 1 + s, seeds[3])
    image = tf.image.stateless_random_saturation(image, 1 - s, 1 + s, seeds[4])
  return _output(image, landmarks, example)


def eval_example(example: dict, *, frame_size: int, config: ml_collections.ConfigDict) -> dict:
  """The centre crop of the training crop size, resized: the mean training geometry."""
  image = tf.cast(tf.io.decode_jpeg(example["image"], channels=3), tf.float32)
  crop = int(round(frame_size * config.crop_fraction))
  start = (frame_size - crop) // 2
  image, landmarks = _crop_resize(image, example["landmarks"], start, start, crop,
                                  config.image_size)
  return _output(image, landmarks, example)
