"""The tf.data pipeline: folds, determinism, exact resume, flips, label fraction."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import augment, input_pipeline
from data_pipeline.landmarks import FLIP_PERMUTATION
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def data():
  config = tiny_config()
  builder = input_pipeline.load_builder(config)
  return config, builder, input_pipeline.fold_splits(config, builder)


def test_folds_are_subject_exclusive(data):
  config, builder, splits = data
  train, val, test = map(set, (splits.train_subjects, splits.val_subjects, splits.test_subjects))
  assert not (train & val) and not (train & test) and not (val & test)
  assert len(train | val | test) == builder.builder_config.num_subjects
  assert len(val) == config.data.num_val_subjects
  assert splits.test_split == "part3"  # Fold 1 tests on part 3.


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
  assert first[0]["image"].shape == (8, 48, 48, 3) and first[0]["label"].shape == (8, 15)
  assert not np.array_equal(first[0]["image"], first[1]["image"])


def test_other_seed_other_order(data):
  config, builder, splits = data
  a = next(input_pipeline.train_batches(config, builder, splits, 8))
  other = tiny_config(seed=1)
  b = next(input_pipeline.train_batches(other, builder, splits, 8))
  assert not np.array_equal(a["image"], b["image"])


def test_flip_reflects_landmarks_onto_the_pixels():
  size = 32
  image = np.zeros((size, size, 3), np.float32)
  landmarks = np.full((68, 2), 16.0, np.float32)
  landmarks[36] = (5.0, 10.0)  # Outer corner of the eye on the image's left.
  image[10, 5] = 255.0
  flipped, moved = augment._flip(tf.constant(image), tf.constant(landmarks), size)
  x, y = moved.numpy()[45]  # Its mirror point must now carry it, at the mirrored pixel.
  assert (x, y) == (size - 1 - 5.0, 10.0)
  assert flipped.numpy()[int(y), int(x), 0] == 255.0
  np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))


def test_crop_resize_moves_landmarks_with_the_pixels():
  image = np.zeros((64, 64, 3), np.float32)
  image[40:44, 20:24] = 255.0  # A 4x4 block centred at pixel-centre (21.5, 41.5).
  landmarks = np.full((68, 2), 21.5, np.float32)
  landmarks[:, 1] = 41.5
  out, moved = augment._crop_resize(tf.constant(image), tf.constant(landmarks), 8, 4, 48, 24)
  x, y = moved.numpy()[0]
  assert (x, y) == pytest.approx(((21.5 - 4 + 0.5) / 2 - 0.5, (41.5 - 8 + 0.5) / 2 - 0.5))
  ys, xs = np.nonzero(out.numpy()[..., 0] > 127)
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
