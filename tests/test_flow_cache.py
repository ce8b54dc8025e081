"""Offline flow targets: the cache holds every training pair, and the pairs stream crops,
resizes and mirrors each cached flow exactly like its pixels."""
import json

import numpy as np
import pytest

from configs import synthau_wsrtl
from data_pipeline import flow_cache, input_pipeline
from data_pipeline.config_loading import override_config
from data_pipeline.errors import UserError
from tests.helpers import TINY_OVERRIDES

FRAME, SIZE = 64, 48  # synthau/tiny frames; network input.


def tiny_config(**overrides):
  merged = {**TINY_OVERRIDES, "data.crop_fraction": 1.0, "data.image_size": SIZE, **overrides}
  return override_config(synthau_wsrtl.get_config(), {k: str(v) for k, v in merged.items()})


def linear_flow(first, second):
  """u = 3 + 0.1 x, v = -2 + 0.05 y (frame pixels): averaging a cell gives its centre's value."""
  y, x = np.mgrid[:first.shape[0], :first.shape[1]].astype(np.float32)
  return np.stack([3 + 0.1 * x, -2 + 0.05 * y], axis=-1)


@pytest.fixture(scope="module")
def linear_cache(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("cache") / "linear")
  return out, flow_cache.build(tiny_config(), out, estimate=linear_flow)


def test_cache_holds_every_training_pair_once(linear_cache):
  out, index = linear_cache
  config = tiny_config()
  builder = input_pipeline.load_builder(config)
  splits = input_pipeline.fold_splits(config, builder)
  pairs = list(input_pipeline.pair_units(config, builder, splits).as_numpy_iterator())
  assert len(index["keys"]) == len(set(index["keys"])) == len(pairs) > 0
  assert np.load(f"{out}/flows.npy").shape == (len(pairs), FRAME // 4, FRAME // 4, 2)
  assert json.load(open(f"{out}/index.json"))["pair_gap"] == config.data.pair_gap


def test_streamed_flow_follows_crop_resize_and_flip(linear_cache):
  out, _ = linear_cache
  config = tiny_config(**{"data.flow_cache": out})
  builder = input_pipeline.load_builder(config)
  splits = input_pipeline.fold_splits(config, builder)
  batch = next(input_pipeline.train_stream(config, builder, splits, "pairs", 8))
  n, scale = SIZE // 4, SIZE / FRAME
  centre = (4 * np.arange(n) + 2) / scale - 0.5  # Frame pixel under each output cell's centre.
  u = (3 + 0.1 * centre) * scale / 4
  v = (-2 + 0.05 * centre) * scale / 4
  assert batch["flow"].shape == (8, n, n, 2) and 0 < batch["flip"].sum() < 8
  for flow, flip in zip(batch["flow"], batch["flip"]):
    expected_u = -u[::-1] if flip else u
    np.testing.assert_allclose(flow[..., 0], np.tile(expected_u, (n, 1)), atol=2e-3)
    np.testing.assert_allclose(flow[..., 1], np.tile(v[:, None], (1, n)), atol=2e-3)


def test_farneback_cache_builds_and_a_cache_for_other_data_is_refused(tmp_path):
  out = str(tmp_path / "farneback")
  index = flow_cache.build(tiny_config(), out)
  flows = np.load(f"{out}/flows.npy")
  assert index["method"] == "farneback" and np.isfinite(flows).all()
  other = tiny_config(**{"data.flow_cache": out, "data.pair_gap": 3})
  builder = input_pipeline.load_builder(other)
  with pytest.raises(UserError, match="pair_gap 2 .config: 3"):
    input_pipeline.train_stream(other, builder, input_pipeline.fold_splits(other, builder),
                                "pairs", 8)
