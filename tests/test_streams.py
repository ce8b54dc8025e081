"""Frames, pairs, clips and cross-identity pairs from one store: contiguity, consistent
augmentation, AU centres that follow the pixels, determinism and exact resume."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from data_pipeline import alignment, augment, input_pipeline
from tests.helpers import tiny_config

GAP, LENGTH, STRIDE = 2, 3, 2
CROP = 58  # The host ships crops of 0.9 of SynthAU/tiny's 64 px; the step resizes them to 48.


@pytest.fixture(scope="module")
def data():
  config = tiny_config(**{"data.pair_gap": GAP, "data.clip_length": LENGTH,
                          "data.clip_stride": STRIDE})
  builder = input_pipeline.load_builder(config)
  return config, builder, input_pipeline.fold_splits(config, builder)


def _batches(data, kind, n=3, start_step=0, **overrides):
  config, builder, splits = data
  if overrides:
    config = tiny_config(**{"data.pair_gap": GAP, "data.clip_length": LENGTH,
                            "data.clip_stride": STRIDE, **overrides})
  stream = input_pipeline.train_stream(config, builder, splits, kind, 4, start_step=start_step)
  return list(itertools.islice(stream, n))


@pytest.mark.parametrize("kind,frames,step", [("pairs", 2, GAP), ("clips", LENGTH, STRIDE)])
def test_pairs_and_clips_are_consecutive_frames_of_one_sequence(data, kind, frames, step):
  for batch in _batches(data, kind):
    assert batch["image"].shape == (4, frames, CROP, CROP, 3)
    assert batch["landmarks"].shape == (4, frames, 68, 2)
    assert batch["au_centres"].shape == (4, frames, len(alignment.CENTRE_AUS), 2, 2)
    np.testing.assert_array_equal(batch["frame"] - batch["frame"][:, :1],
                                  np.broadcast_to(np.arange(frames) * step, (4, frames)))
    # SynthAU frames of one clip differ, but far less than frames of two people do.
    same_unit = np.abs(batch["image"][:, 0].astype(int) - batch["image"][:, -1]).mean()
    other_unit = np.abs(batch["image"][0, 0].astype(int) - batch["image"][1, 0]).mean()
    assert 0 < same_unit < other_unit


def test_reference_pairs_hold_a_frame_and_the_first_frame_of_its_sequence(data):
  batches = _batches(data, "pairs", n=4, **{"data.pair_reference": "first"})
  frames = np.concatenate([b["frame"] for b in batches])
  assert (frames[:, 1] == 0).all() and (frames[:, 0] > 0).any()  # Sequences start at frame 0.
  for batch in batches:
    itself = batch["frame"][:, 0] == 0
    same = np.abs(batch["image"][:, 0].astype(int) - batch["image"][:, 1]).mean((1, 2, 3))
    assert (same[itself] == 0).all() and (same[~itself] > 0).all()


def test_cross_identity_pairs_two_subjects(data):
  for batch in _batches(data, "cross_identity"):
    assert batch["image"].shape == (4, 2, LENGTH, CROP, CROP, 3)
    assert (batch["identity"][:, 0] != batch["identity"][:, 1]).all()


def test_unlabelled_frames_hide_labels(data):
  batch = _batches(data, "unlabelled", n=1)[0]
  assert batch["image"].shape == (4, CROP, CROP, 3) and (batch["label"] == -1).all()


def test_clips_are_deterministic_and_resume_exactly(data):
  first = _batches(data, "clips", n=4)
  again = _batches(data, "clips", n=4)
  resumed = _batches(data, "clips", n=2, start_step=2)
  other_seed = _batches(data, "clips", n=1, seed=1)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  for a, b in zip(first[2:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
  assert not np.array_equal(first[0]["image"], other_seed[0]["image"])


def test_a_unit_shares_one_crop_flip_and_jitter():
  """Three copies of one frame must come out identical: the augmentation is drawn per unit."""
  rng = np.random.default_rng(0)
  frame = tf.io.encode_jpeg(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).numpy()
  landmarks = rng.uniform(10, 50, (68, 2)).astype(np.float32)
  unit = {"image": tf.constant([frame] * 3), "landmarks": tf.constant(np.stack([landmarks] * 3)),
          "au_occurrence": tf.zeros((3, 15), tf.int8), "frame": tf.range(3),
          "identity": tf.zeros((3,), tf.int32)}
  config = tiny_config(**{"data.color_jitter": 0.4}).data
  for index in range(6):  # Different draws of crop, flip and jitter.
    decoded = augment.decode_unit(tf.constant(index, tf.int64), unit, num_frames=3,
                                  frame_size=64, config=config, seed=0)
    batch = {k: tf.expand_dims(v, 0) for k, v in decoded.items()}
    out = augment.augment_batch(batch, frame_size=64, config=config)
    for key in ("image", "landmarks", "au_centres"):
      np.testing.assert_array_equal(out[key][0, 0], out[key][0, 1])
      np.testing.assert_array_equal(out[key][0, 0], out[key][0, 2])


def test_au_centres_follow_the_augmented_landmarks(data):
  batch = _batches(data, "clips", n=1)[0]
  expected = alignment.au_centres(batch["landmarks"].astype(np.float64))
  np.testing.assert_allclose(batch["au_centres"], expected, atol=1e-3)


def test_units_longer_than_every_sequence_are_a_clear_error(data):
  # synthau/tiny's sequences have 8 frames; 3 frames 4 apart span 9.
  with pytest.raises(input_pipeline.UserError, match=r"no clips unit \(3 frames 4 apart\) fits"):
    _batches(data, "clips", **{"data.clip_stride": 4})
