"""Speed and accuracy of wsrtl_jax.flow.estimate_flow against OpenCV's Farneback.

Accuracy: interior end-point error on pairs built as in tests/test_flow.py (a real photo warped by
known smooth flow), with more random fields per amplitude than the test and optional frame noise.
Speed: one jitted call on a batch of 64 pairs at 128 px, after compilation, on JAX's default
device; the fastest of several runs, the one least disturbed by other load.

  .venv/bin/python tools/bench_flow.py --settings "" "levels=3,iterations=20" --noise 0.01
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.test_flow import (farneback, interior_epe, photo_views, smooth_flow,  # noqa: E402
                             warp_pair)
from wsrtl_jax.flow import estimate_flow  # noqa: E402


def pairs(amplitude: float, fields: int, noise: float) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
  """`fields` random smooth fields applied to each of the two photo views; both frames then get
  independent Gaussian noise of standard deviation `noise` (sensor noise, compression)."""
  firsts, seconds, flows = [], [], []
  for view_index, second in enumerate(photo_views()):
    for seed in range(fields):
      flow = smooth_flow(amplitude, 1000 * view_index + seed)
      firsts.append(warp_pair(second, flow))
      seconds.append(second)
      flows.append(flow)
  firsts, seconds = np.stack(firsts), np.stack(seconds)
  if noise:
    rng = np.random.default_rng(0)
    firsts, seconds = (np.clip(x + rng.normal(0, noise, x.shape), 0, 1).astype(np.float32)
                       for x in (firsts, seconds))
  return firsts, seconds, np.stack(flows)


def parse_settings(text: str) -> dict:
  """'levels=3,lam=0.3,median_filter=False' -> estimate_flow keyword arguments."""
  items = (item.split("=") for item in text.split(",") if item)
  return {key: ast.literal_eval(value) for key, value in items}


def time_batch(settings: dict, batch: int, repeats: int) -> float:
  """Seconds of one jitted estimate_flow call on `batch` random 128 px RGB pairs (best of
  `repeats`)."""
  rng = np.random.default_rng(0)
  first, second = (jax.device_put(rng.uniform(size=(batch, 128, 128, 3)).astype(np.float32))
                   for _ in range(2))
  estimate_flow(first, second, **settings).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    estimate_flow(first, second, **settings).block_until_ready()
    times.append(time.perf_counter() - start)
  return min(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--settings", nargs="*", default=[""],
                      help="comma-separated estimate_flow keyword arguments, one run each")
  parser.add_argument("--fields", type=int, default=8, help="random fields per photo view")
  parser.add_argument("--noise", type=float, default=0.0, help="frame noise std, in 0-1 units")
  parser.add_argument("--amplitudes", type=float, nargs="*", default=[1.0, 3.0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  data = {amplitude: pairs(amplitude, args.fields, args.noise) for amplitude in args.amplitudes}
  for amplitude, (firsts, seconds, truths) in data.items():
    theirs = np.stack([farneback(f, s) for f, s in zip(firsts, seconds)])
    print(f"Farneback {amplitude:.0f} px: EPE {interior_epe(theirs, truths):.3f}")
  print(f"device: {jax.devices()[0].device_kind}")
  for text in args.settings:
    settings = parse_settings(text)
    epes = "  ".join(
        f"{amplitude:.0f} px {interior_epe(np.asarray(estimate_flow(f, s, **settings)), t):.3f}"
        for amplitude, (f, s, t) in data.items())
    seconds_per_batch = time_batch(settings, args.batch, args.repeats)
    print(f"{text or 'defaults':40s} EPE {epes}  {args.batch} pairs: "
          f"{1000 * seconds_per_batch:.1f} ms")


if __name__ == "__main__":
  main()
