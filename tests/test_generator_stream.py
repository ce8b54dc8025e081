"""SynthAU's cross-identity clips rendered by the generator (`data.source="generator"`): the same
subjects and frames as the store, resumable, and CLP pretraining from them with TensorFlow
absent."""
import sys

import numpy as np
import pytest

from data_pipeline import input_pipeline
from data_pipeline.synthau import generator_stream
from data_pipeline.synthau.identity import subject_index
from data_pipeline.config_loading import load_config, override_config
from data_pipeline.errors import UserError
from tests.helpers import TINY_OVERRIDES, cli_args, run_cli

CLP_TINY = {**TINY_OVERRIDES, "global_batch_size": 4, "model.code_dim": 16,
            "clp.queue_size": 32, "data.clip_stride": 2, "num_train_steps": 2,
            "checkpoint_every": 2, "data.source": "generator"}


def clp_config(**overrides):
  return override_config(load_config("configs/synthau_clp.py"),
                         {k: str(v) for k, v in {**CLP_TINY, **overrides}.items()})


def test_the_generator_fold_has_the_stores_subjects():
  config = clp_config()
  splits = generator_stream.fold_splits(config, generator_stream.load_builder(config))
  assert splits == input_pipeline.fold_splits(config, input_pipeline.load_builder(config))


def test_units_are_clips_of_two_people_cut_from_their_sequences_and_resume_exactly():
  config = clp_config()
  variant = generator_stream.load_builder(config)
  splits = generator_stream.fold_splits(config, variant)
  video = generator_stream.render_sequences(variant, splits.train.subjects)
  stream = generator_stream.train_stream(config, variant, splits, "cross_identity", 4)
  batches = [next(stream) for _ in range(3)]
  crop = int(round(variant.image_size * config.data.crop_fraction))
  assert batches[0]["image"].shape == (4, 2, 4, crop, crop, 3)
  subject_of = {subject_index(s): i for i, s in enumerate(splits.train.subjects)}
  for batch in batches:
    assert np.all(batch["identity"][:, 0] != batch["identity"][:, 1])
    assert np.all(np.abs(batch["jitter"][..., 0]) <= 127.5 * config.data.color_jitter)
    for unit, people in zip(batch["image"], batch["identity"]):
      for clip, person in zip(unit, people):
        # Some sequence of this person, frames 2 apart, holds this clip at some crop.
        sequences = video[subject_of[int(person)]]
        found = [(c, t, y, x) for c in range(sequences.shape[0]) for t in range(2)
                 for y in range(variant.image_size - crop + 1)
                 for x in range(variant.image_size - crop + 1)
                 if np.array_equal(sequences[c, t::2, y:y + crop, x:x + crop], clip)]
        assert found
  resumed = next(generator_stream.train_stream(config, variant, splits, "cross_identity", 4,
                                               start_step=2))
  for key in batches[2]:
    np.testing.assert_array_equal(resumed[key], batches[2][key])


def test_hosts_take_their_own_rows_of_the_same_global_batch(monkeypatch):
  config = clp_config()
  variant = generator_stream.load_builder(config)
  splits = generator_stream.fold_splits(config, variant)
  batch = lambda local: next(generator_stream.train_stream(config, variant, splits,
                                                           "cross_identity", local))
  whole = batch(8)
  monkeypatch.setattr(generator_stream.jax, "process_count", lambda: 2)
  shares = []
  for host in (0, 1):
    monkeypatch.setattr(generator_stream.jax, "process_index", lambda host=host: host)
    shares.append(batch(4))
  for key in whole:
    np.testing.assert_array_equal(np.concatenate([s[key] for s in shares]), whole[key])


def test_the_generator_source_refuses_what_it_cannot_stream():
  with pytest.raises(UserError, match="renders SynthAU only; data.name='bp4d'"):
    generator_stream.load_builder(clp_config(**{"data.name": "bp4d"}))
  with pytest.raises(UserError, match="CLP's cross-identity clips only; method='supervised'"):
    generator_stream.load_builder(clp_config(method="supervised"))
  variant = generator_stream.load_builder(clp_config())
  splits = generator_stream.fold_splits(clp_config(), variant)
  for key, value, expected in (("data.crop_fraction", 1.5, "at least 0.015625 and at most 1"),
                               ("data.clip_length", 0, "at least 1")):
    with pytest.raises(UserError, match=f"{key}={value}; expected {expected}"):
      next(generator_stream.train_stream(clp_config(**{key: value}), variant, splits,
                                         "cross_identity", 4))
  with pytest.raises(UserError, match="lower data.clip_length=4, data.clip_stride=3"):
    config = clp_config(**{"data.clip_stride": 3})  # 10 frames of synthau/tiny's 8.
    variant = generator_stream.load_builder(config)
    next(generator_stream.train_stream(config, variant,
                                       generator_stream.fold_splits(config, variant),
                                       "cross_identity", 4))


def test_clp_pretrains_from_the_generator_without_tensorflow(tmp_path):
  args = cli_args("train", tmp_path / "clp", config="configs/synthau_clp.py", **CLP_TINY)
  blocked = ("import sys; sys.modules['tensorflow'] = sys.modules['tensorflow_datasets'] = None;"
             " from wsrtl_jax import cli; cli.main()")
  result = run_cli([sys.executable, "-c", blocked] + args[3:], timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Rendered 10 SynthAU/tiny sequences" in result.stdout  # 5 training people x 2.
  assert (tmp_path / "clp" / "checkpoints" / "2").is_dir()
  assert (tmp_path / "clp" / "cir_samples.png").is_file()
  bogus = run_cli(cli_args("train", tmp_path / "bogus", config="configs/synthau_clp.py",
                           **{**CLP_TINY, "data.source": "files"}))
  assert "data.source='files'; choose 'store' or 'generator'" in bogus.stderr
