"""On-device TV-L1 flow: accuracy against OpenCV's Farneback on a real photo warped by known smooth
flow, the (x, y) sign convention, grey and RGB input, jit + batch consistency, shard_map."""
from __future__ import annotations

import os

import cv2
import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from wsrtl_jax.flow import estimate_flow, warp

PHOTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "astronaut_face.jpg")
SIZE = 128
MARGIN = 10


def photo_views() -> list[np.ndarray]:
  """Two 128 px views of the real face photo, float32 RGB in [0, 1]: the whole photo, and a
  tighter centre crop (a different scale)."""
  photo = cv2.cvtColor(cv2.imread(PHOTO), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
  side = photo.shape[0]
  crop = photo[side // 8: side - side // 8, side // 8: side - side // 8]
  return [cv2.resize(view, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for view in (photo, crop)]


def smooth_flow(amplitude: float, seed: int) -> np.ndarray:
  """[SIZE, SIZE, 2] sum of three low-frequency sinusoids per component, scaled so that the
  largest vector is `amplitude` px long."""
  rng = np.random.default_rng(seed)
  ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / SIZE
  flow = np.zeros((SIZE, SIZE, 2))
  for component in range(2):
    for _ in range(3):
      fx, fy = rng.uniform(-1.5, 1.5, size=2)
      flow[..., component] += rng.uniform(0.5, 1.0) * np.sin(
          2 * np.pi * (fx * xs + fy * ys) + rng.uniform(0, 2 * np.pi))
  flow *= amplitude / np.linalg.norm(flow, axis=-1).max()
  return flow.astype(np.float32)


def warp_pair(second: np.ndarray, flow: np.ndarray) -> np.ndarray:
  """`first` with first(x) = second(x + flow(x)) exactly (bilinear), so `flow` is ground truth."""
  ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
  return cv2.remap(second, xs + flow[..., 0], ys + flow[..., 1], interpolation=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE)


def make_pairs(amplitude: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(first, second, true flow) stacked over both photo views, each with its own field."""
  seconds = photo_views()
  flows = [smooth_flow(amplitude, seed) for seed in range(len(seconds))]
  firsts = [warp_pair(second, flow) for second, flow in zip(seconds, flows)]
  return np.stack(firsts), np.stack(seconds), np.stack(flows)


def farneback(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """OpenCV's Farneback flow with its standard parameters, on the same grey levels (in 0-255, the
  range its thresholds expect: on 0-1 input it returns almost zero flow)."""
  def grey(image):
    return 255.0 * cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  return cv2.calcOpticalFlowFarneback(grey(first), grey(second), None, pyr_scale=0.5, levels=3,
                                      winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                                      flags=0)


def interior_epe(estimate: np.ndarray, truth: np.ndarray) -> float:
  """Mean end-point error over pixels at least MARGIN px from every border."""
  error = np.linalg.norm(estimate - truth, axis=-1)
  return float(error[..., MARGIN:-MARGIN, MARGIN:-MARGIN].mean())


@pytest.fixture(scope="module")
def pairs() -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  return {amplitude: make_pairs(amplitude) for amplitude in (1.0, 3.0)}


@pytest.fixture(scope="module")
def rgb_estimates(pairs) -> tuple[np.ndarray, np.ndarray]:
  """estimate_flow on all four RGB pairs in one batch: [1 px view 1, 1 px view 2, 3 px ...]."""
  firsts = np.concatenate([pairs[a][0] for a in (1.0, 3.0)])
  seconds = np.concatenate([pairs[a][1] for a in (1.0, 3.0)])
  return firsts, seconds, np.asarray(estimate_flow(firsts, seconds))


@pytest.mark.parametrize("amplitude", [1.0, 3.0])
def test_beats_farneback_on_warped_real_photo(pairs, rgb_estimates, amplitude):
  firsts, seconds, truths = pairs[amplitude]
  offset = 0 if amplitude == 1.0 else len(firsts)
  ours = interior_epe(rgb_estimates[2][offset:offset + len(firsts)], truths)
  theirs = interior_epe(np.stack([farneback(f, s) for f, s in zip(firsts, seconds)]), truths)
  zero = interior_epe(np.zeros_like(truths), truths)
  print(f"amplitude {amplitude} px: EPE estimate_flow {ours:.3f}, Farneback {theirs:.3f}, "
        f"zero flow {zero:.3f}")
  assert ours <= theirs
  assert ours < 0.25 * zero


def test_jit_batch_equals_separate_calls(rgb_estimates):
  firsts, seconds, batched = rgb_estimates
  assert batched.shape == firsts.shape[:3] + (2,) and batched.dtype == np.float32
  step = jax.jit(lambda first, second: estimate_flow(first, second))  # as inside a train step
  for i in range(len(firsts)):
    single = np.asarray(step(firsts[i:i + 1], seconds[i:i + 1]))
    np.testing.assert_allclose(single[0], batched[i], atol=1e-3)


def test_runs_per_device_under_shard_map(rgb_estimates):
  firsts, seconds, batched = rgb_estimates
  mesh = jax.make_mesh((len(firsts),), ("data",))
  sharding = NamedSharding(mesh, P("data"))
  per_device = jax.jit(jax.shard_map(lambda a, b: estimate_flow(a, b), mesh=mesh,
                                     in_specs=(P("data"), P("data")), out_specs=P("data")))
  flow = per_device(jax.device_put(firsts, sharding), jax.device_put(seconds, sharding))
  np.testing.assert_allclose(np.asarray(flow), batched, atol=1e-3)


def test_grey_input_and_translation_convention():
  second = cv2.cvtColor(photo_views()[0], cv2.COLOR_RGB2GRAY)
  first = np.roll(second, -2, axis=1)  # first[y, x] = second[y, x + 2]
  flow = np.asarray(estimate_flow(first[None], second[None]))
  assert flow.shape == (1, SIZE, SIZE, 2) and flow.dtype == np.float32
  inside = flow[0, MARGIN:-MARGIN, MARGIN:-MARGIN]
  np.testing.assert_allclose(np.median(inside, axis=(0, 1)), [2.0, 0.0], atol=0.1)


def test_bad_frames_are_rejected():
  with pytest.raises(ValueError, match="same"):
    estimate_flow(np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8), np.float32))
  with pytest.raises(ValueError, match="uint8.*expected float"):
    estimate_flow(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))


def test_warp_moves_pixels_by_the_flow_and_is_differentiable_in_it():
  rng = np.random.default_rng(0)
  images = rng.random((2, 8, 10, 3)).astype(np.float32)
  shift = np.zeros((2, 8, 10, 2), np.float32)
  shift[0, ..., 0], shift[1, ..., 1] = 2.0, -1.0  # Image 0 samples 2 px right, image 1 1 px up.
  moved = np.asarray(warp(images, shift))
  np.testing.assert_allclose(moved[0, :, :-2], images[0, :, 2:], atol=1e-6)
  np.testing.assert_allclose(moved[1, 1:], images[1, :-1], atol=1e-6)
  np.testing.assert_allclose(warp(images, 0 * shift), images, atol=1e-6)
  # Half a pixel right on a horizontal ramp: the loss's gradient is the ramp's slope.
  ramp = np.broadcast_to(np.arange(10, dtype=np.float32), (1, 8, 10))[..., None]
  grad = jax.grad(lambda f: warp(ramp, f)[0, :, 2:-2, 0].sum())(np.full((1, 8, 10, 2), 0.5,
                                                                          np.float32))
  np.testing.assert_allclose(grad[0, :, 2:-2, 0], 1.0, atol=1e-6)
  np.testing.assert_allclose(grad[..., 1], 0.0, atol=1e-6)
