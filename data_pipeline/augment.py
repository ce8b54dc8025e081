"""Preprocessing in tf of units of T frames (a frame, a pair, a clip): crop, resize, flip with
landmark reflection, colour jitter, the same for every frame of a unit so that motion between
them stays real. Landmarks and AU centres follow the pixels.

The host does the least it can: it draws each unit's parameters and decodes only its crop
window. Resizing, flipping and colour jitter run on the accelerator, fused with the input
normalisation (`wsrtl_jax.image_ops.finish_images`); landmarks and AU centres leave the host
already where they land in the final image.
Randomness is stateless, seeded by (seed, position in the stream), so it is the same whatever the
threading and however the stream was resumed.
"""
from __future__ import annotations

import ml_collections
import tensorflow as tf

from data_pipeline import alignment
from data_pipeline.augment_params import crop_size, jitter_bounds, to_input_pixels
from data_pipeline.landmarks import FLIP_PERMUTATION

_SELECTION, _SHIFT = alignment.au_centre_operands(alignment.CENTRE_AUS)


def au_centres(landmarks: tf.Tensor) -> tf.Tensor:
  """[..., 68, 2] landmarks -> [..., len(CENTRE_AUS), 2, 2] AU centres (alignment.au_centres)."""
  points = tf.einsum("cl,...ld->...cd", tf.constant(_SELECTION), landmarks)
  ruler = tf.abs(landmarks[..., 39, 0] - landmarks[..., 42, 0])
  dy = tf.constant(_SHIFT) * ruler[..., None]
  points = points + tf.stack([tf.zeros_like(dy), dy], axis=-1)
  return tf.reshape(points, tf.concat([tf.shape(points)[:-2], [len(alignment.CENTRE_AUS), 2, 2]],
                                      axis=0))


def decode_unit(index, unit: dict, *, num_frames: int, frame_size: int,
                config: ml_collections.ConfigDict, seed: int | None) -> dict:
  """Draws a unit's crop, flip and colour jitter, and decodes just the crop window of each of
  its frames. Without `seed`: the centre crop of the training crop size (the mean training
  geometry), no flip, no jitter."""
  crop = crop_size(frame_size, config)
  out = dict(unit)
  if seed is None:
    out["top_left"] = tf.fill([2], (frame_size - crop) // 2)
    out["flip"], out["jitter"] = tf.constant(False), tf.constant([0.0, 1.0, 1.0])
  else:
    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)]), num=5)
    out["top_left"] = tf.random.stateless_uniform([2], seeds[0], 0, frame_size - crop + 1,
                                                  tf.int32)
    out["flip"] = tf.logical_and(tf.constant(bool(config.flip)),
                                 tf.random.stateless_uniform([], seeds[1]) < 0.5)
    low, high = jitter_bounds(config.color_jitter)
    out["jitter"] = tf.stack([  # Brightness offset, contrast and saturation factors.
        tf.random.stateless_uniform([], seeds[2 + i], low[i], high[i]) for i in range(3)])
  window = tf.concat([out["top_left"], [crop, crop]], axis=0)
  out["image"] = tf.stack([tf.image.decode_and_crop_jpeg(unit["image"][t], window, channels=3)
                           for t in range(num_frames)])
  return out


def augment_batch(batch: dict, *, frame_size: int, config: ml_collections.ConfigDict) -> dict:
  """A batch of decoded units, ready to ship: the crops [B, T, C, C, 3] uint8 with each unit's
  `flip` and colour `jitter`, which the accelerator applies while resizing to S =
  `config.image_size` (`wsrtl_jax.image_ops.finish_images`); landmarks [B, T, 68, 2] and AU
  centres are already where they land in that S x S image (bilinear resampling with pixel
  centres at +0.5)."""
  size = config.image_size
  top_left = tf.cast(batch["top_left"], tf.float32)[:, None, None, ::-1]
  landmarks = to_input_pixels(batch["landmarks"], top_left, crop_size(frame_size, config), size)
  mirrored = tf.gather(landmarks, FLIP_PERMUTATION, axis=-2)
  mirrored = tf.stack([size - 1.0 - mirrored[..., 0], mirrored[..., 1]], axis=-1)
  landmarks = tf.where(batch["flip"][:, None, None, None], mirrored, landmarks)
  out = {"image": batch["image"], "flip": batch["flip"], "jitter": batch["jitter"],
         "landmarks": landmarks, "au_centres": au_centres(landmarks),
         "label": tf.cast(batch["au_occurrence"], tf.int32), "frame": batch["frame"],
         "identity": batch["identity"][:, 0]}
  if "flow" in batch:  # Cached flow targets, already in the final geometry.
    out["flow"] = batch["flow"]
  return out
