"""Optional offline flow targets: OpenCV's Farneback flow of every training pair, computed once
and streamed with the pairs, for users who want fixed targets instead of the on-device TV-L1.

  python -m data_pipeline.flow_cache --config FILE [--config.KEY=VALUE ...] --out DIR
  python -m wsrtl_jax train --config FILE --config.data.flow_cache=DIR ...

DIR holds `flows.npy` (float16 [N, F/4, F/4, 2]: the flow of pair n from frame t to t + gap,
averaged over 4 x 4 pixel cells of the F x F stored frame, in frame pixels), and `index.json`
(the store, fold, gap, frame size and the key `sequence/frame` of each row). The streams crop,
resize and mirror a unit's cached flow exactly as its pixels (`cropped_flow`), so the step gets
targets in the same units as the on-device ones (pixels of the 1/4 map of the network input).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Callable

import cv2
import ml_collections
import numpy as np
import tensorflow as tf

from data_pipeline import input_pipeline
from data_pipeline.cached_flow import CELL, description, pair_key
from data_pipeline.config_loading import load_config, override_config, split_overrides
from data_pipeline.errors import UserError
from data_pipeline.progress import format_seconds



def farneback(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """OpenCV's Farneback flow [H, W, 2] (x, y) from uint8 RGB `first` to `second`, with its
  standard parameters."""
  grey = lambda image: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  return cv2.calcOpticalFlowFarneback(grey(first), grey(second), None, pyr_scale=0.5, levels=3,
                                      winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def build(config: ml_collections.ConfigDict, out_dir: str,
          estimate: Callable[[np.ndarray, np.ndarray], np.ndarray] = farneback) -> dict:
  """Computes the flow of every training pair of `config`'s store, in store order, into
  `out_dir` (written to a temporary folder and renamed, so a killed run leaves no partial
  cache). Prints progress with rate and ETA. Returns the index."""
  builder = input_pipeline.load_builder(config)
  splits = input_pipeline.fold_splits(config, builder)
  size = splits.frame_size
  if size % CELL:
    raise UserError(f"frames of {size} px are not a multiple of {CELL}")
  units = input_pipeline.pair_units(config, builder, splits).map(
      lambda u: {"image": tf.stack([tf.io.decode_jpeg(u["image"][t], channels=3)
                                    for t in range(2)]),
                 "sequence": u["sequence"][0], "frame": u["frame"][0]},
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
  total = int(units.reduce(0, lambda n, _: n + 1))
  keys, flows, start = [], np.zeros((total, size // CELL, size // CELL, 2), np.float16), time.time()
  for n, unit in enumerate(units.as_numpy_iterator()):
    flow = estimate(unit["image"][0], unit["image"][1])
    flows[n] = flow.reshape(size // CELL, CELL, size // CELL, CELL, 2).mean(axis=(1, 3))
    keys.append(pair_key(unit["sequence"], unit["frame"]))
    if (n + 1) % 500 == 0 or n + 1 == total:
      rate = (n + 1) / (time.time() - start)
      print(f"pair {n + 1}/{total} | {rate:.0f} pairs/s, ETA "
            f"{format_seconds((total - n - 1) / rate)}", flush=True)
  index = {**description(input_pipeline.store_name(config), config, splits), "keys": keys}
  partial = out_dir.rstrip("/") + ".partial"
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  np.save(os.path.join(partial, "flows.npy"), flows)
  with open(os.path.join(partial, "index.json"), "w") as f:
    json.dump(index, f)
  if os.path.exists(out_dir):
    shutil.rmtree(out_dir)
  os.rename(partial, out_dir)
  return index


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(prog="python -m data_pipeline.flow_cache")
  parser.add_argument("--config", required=True)
  parser.add_argument("--out", required=True)
  overrides, rest = split_overrides(argv)
  args = parser.parse_args(rest)
  index = build(override_config(load_config(args.config), overrides), args.out)
  print(f"{len(index['keys'])} pairs of {index['store']} (gap {index['pair_gap']}) -> "
        f"{args.out}; train with --config.data.flow_cache={args.out}")


if __name__ == "__main__":
  try:
    main(sys.argv[1:])
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
