"""The tf.data pipeline: folds, determinism, exact resume, flips, label fraction."""
import itertools

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import augment, input_pipeline
from data_pipeline.landmarks import FLIP_PERMUTATION
from tests.helpers import tiny_config
from wsrtl_jax import image_ops


@pytest.fixture(scope="module")
def data():
  config = tiny_config()
  builder = input_pipeline.load_builder(config)
  return config, builder, input_pipeline.fold_splits(config, builder)


def test_folds_are_subject_exclusive(data):
  config, builder, splits = data
  train, val, test = map(set, (splits.train.subjects, splits.validation.subjects,
                               splits.test.subjects))
  assert not (train & val) and not (train & test) and not (val & test)
  assert len(train | val | test) == builder.builder_config.num_subjects
  assert len(val) == config.data.num_val_subjects
  assert splits.test.split == "part3"  # Fold 1 tests on part 3.


def test_batches_are_deterministic_and_resume_exactly(data):
  config, builder, splits = data
  first = list(itertools.islice(input_pipeline.train_batches(config, builder, splits, 8), 5))
  again = list(itertools.islice(input_pipeline.train_batches(config, builder, splits, 8), 5))
  resumed = list(itertools.islice(
      input_pipeline.train_batches(config, builder, splits, 8, start_step=3), 2))
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  for a, b in zip(first[3:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  assert first[0]["image"].dtype == np.uint8
  assert first[0]["image"].shape == (8, 58, 58, 3) and first[0]["label"].shape == (8, 15)
  assert not np.array_equal(first[0]["image"], first[1]["image"])


def test_other_seed_other_order(data):
  config, builder, splits = data
  a = next(input_pipeline.train_batches(config, builder, splits, 8))
  other = tiny_config(seed=1)
  b = next(input_pipeline.train_batches(other, builder, splits, 8))
  assert not np.array_equal(a["image"], b["image"])


def _final_image_and_landmarks(image, landmarks, flip, crop_fraction, size, seed=None):
  """One frame through the host's half of the augmentation and the accelerator's."""
  unit = {"image": tf.constant([tf.io.encode_jpeg(image, quality=100).numpy()]),
          "landmarks": tf.constant(landmarks[None]), "au_occurrence": tf.zeros((1, 15), tf.int8),
          "frame": tf.zeros((1,), tf.int32), "identity": tf.zeros((1,), tf.int32)}
  config = tiny_config(**{"data.crop_fraction": crop_fraction, "data.image_size": size}).data
  decoded = augment.decode_unit(0, unit, num_frames=1, frame_size=image.shape[0], config=config,
                                seed=None)
  decoded["flip"] = tf.constant(flip)
  out = augment.augment_batch({k: tf.expand_dims(v, 0) for k, v in decoded.items()},
                              frame_size=image.shape[0], config=config)
  final = image_ops.finish_images(jnp.asarray(out["image"].numpy()), jnp.asarray([flip]),
                                  jnp.asarray(out["jitter"].numpy()), size)
  return np.asarray(final)[0, 0], out["landmarks"].numpy()[0, 0]


def test_flip_reflects_landmarks_onto_the_pixels():
  size = 32
  image = np.zeros((size, size, 3), np.uint8)
  landmarks = np.full((68, 2), 16.0, np.float32)
  landmarks[36] = (5.0, 10.0)  # Outer corner of the eye on the image's left.
  image[9:12, 4:7] = 255
  final, moved = _final_image_and_landmarks(image, landmarks, True, 1.0, size)
  x, y = moved[45]  # Its mirror point must now carry it, at the mirrored pixel.
  assert (x, y) == pytest.approx((size - 1 - 5.0, 10.0))
  assert final[int(y), int(x), 0] > 200
  np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))


def test_crop_resize_moves_landmarks_with_the_pixels():
  image = np.zeros((64, 64, 3), np.uint8)
  image[40:44, 20:24] = 255  # A 4x4 block centred at pixel-centre (21.5, 41.5).
  landmarks = np.full((68, 2), 21.5, np.float32)
  landmarks[:, 1] = 41.5
  # The centre 48 px (top-left 8) is shipped; the accelerator halves it.
  final, moved = _final_image_and_landmarks(image, landmarks, False, 0.75, 24)
  x, y = moved[0]
  assert (x, y) == pytest.approx(((21.5 - 8 + 0.5) / 2 - 0.5, (41.5 - 8 + 0.5) / 2 - 0.5))
  ys, xs = np.nonzero(final[..., 0] > 100)
  assert (xs.mean(), ys.mean()) == pytest.approx((x, y), abs=0.5)


def test_label_fraction_keeps_that_share_of_training_labels(data):
  _, builder, splits = data
  full = input_pipeline.training_labels(tiny_config(), builder, splits)
  tenth = input_pipeline.training_labels(tiny_config(**{"data.label_fraction": 0.25}), builder,
                                         splits)
  assert (full >= 0).all()
  labelled = (tenth >= 0).all(1).mean()
  assert 0.1 < labelled < 0.4
  assert ((tenth < 0).all(1) | (tenth >= 0).all(1)).all()  # A frame keeps all labels or none.
