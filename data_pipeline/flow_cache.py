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
from wsrtl_jax.config_loading import load_config, override_config
from wsrtl_jax.errors import UserError
from wsrtl_jax.logging_utils import format_seconds

CELL = 4  # Flow is stored averaged over CELL x CELL pixels, as the flow head predicts it.


def farneback(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """OpenCV's Farneback flow [H, W, 2] (x, y) from uint8 RGB `first` to `second`, with its
  standard parameters."""
  grey = lambda image: cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  return cv2.calcOpticalFlowFarneback(grey(first), grey(second), None, pyr_scale=0.5, levels=3,
                                      winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _key(sequence, frame) -> str:
  sequence = sequence.decode() if isinstance(sequence, bytes) else str(sequence)
  return f"{sequence}/{int(frame)}"


def _description(config: ml_collections.ConfigDict, splits) -> dict:
  return {"store": input_pipeline.store_name(config), "subjects": list(splits.train.subjects),
          "pair_gap": int(config.data.pair_gap), "frame_size": int(splits.frame_size),
          "method": "farneback", "cell": CELL}


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
    keys.append(_key(unit["sequence"], unit["frame"]))
    if (n + 1) % 500 == 0 or n + 1 == total:
      rate = (n + 1) / (time.time() - start)
      print(f"pair {n + 1}/{total} | {rate:.0f} pairs/s, ETA "
            f"{format_seconds((total - n - 1) / rate)}", flush=True)
  index = {**_description(config, splits), "keys": keys}
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


class FlowLookup:
  """The cached flows of `cache_dir`, checked against `config`'s store, fold and gap."""

  def __init__(self, cache_dir: str, config: ml_collections.ConfigDict, splits):
    path = os.path.join(cache_dir, "index.json")
    if not os.path.isfile(path):
      raise UserError(f"data.flow_cache='{cache_dir}' has no index.json; build it with "
                      "python -m data_pipeline.flow_cache --config ... --out DIR")
    with open(path) as f:
      index = json.load(f)
    wanted = _description(config, splits)
    changed = [k for k in wanted if index.get(k) != wanted[k]]
    if changed:
      raise UserError(f"data.flow_cache='{cache_dir}' was built for other data: "
                      + ", ".join(f"{k} {index.get(k)!r} (config: {wanted[k]!r})"
                                  for k in changed if k != "subjects")
                      + (" training subjects differ" if "subjects" in changed else ""))
    self.rows = {key: n for n, key in enumerate(index["keys"])}
    self.flows = np.load(os.path.join(cache_dir, "flows.npy"), mmap_mode="r")
    self.cache_dir = cache_dir

  def _row(self, sequence, frame) -> np.ndarray:
    key = _key(sequence, frame)
    if key not in self.rows:
      raise UserError(f"pair {key} is not in the flow cache '{self.cache_dir}'")
    return np.asarray(self.flows[self.rows[key]], np.float32)

  def flow(self, sequence: tf.Tensor, frame: tf.Tensor) -> tf.Tensor:
    """The cached [F/4, F/4, 2] flow of the pair starting at (sequence, frame), in tf."""
    q = self.flows.shape[1]
    out = tf.numpy_function(self._row, [sequence, frame], tf.float32, stateful=False)
    return tf.ensure_shape(out, [q, q, 2])


def cropped_flow(flow: tf.Tensor, top_left: tf.Tensor, flip: tf.Tensor, crop: int,
                 size: int) -> tf.Tensor:
  """A unit's cached flow [Q, Q, 2] (cells of CELL frame pixels, vectors in frame pixels) ->
  the [size/CELL, size/CELL, 2] target of its augmented view: the crop window at `top_left`
  (y, x) of `crop` pixels, resized to `size`, mirrored if `flip`; vectors in pixels of that map.

  Cell k of the output is centred on input pixel CELL k + (CELL - 1) / 2, which is crop pixel
  (CELL k + CELL / 2) crop / size - 1/2; it is sampled bilinearly from the stored cells (centred
  on frame pixel CELL j + (CELL - 1) / 2), edges replicated."""
  n = size // CELL
  padded = tf.pad(flow, [[1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
  q = int(padded.shape[0])
  k = tf.constant([0.0, n - 1.0])
  ends = [((tf.cast(top_left[i], tf.float32) + (CELL * k + CELL / 2) * crop / size - 0.5)
           - (CELL - 1) / 2) / CELL + 1.0 for i in (0, 1)]  # Padded-map coordinates.
  box = tf.stack([ends[0][0], ends[1][0], ends[0][1], ends[1][1]]) / (q - 1)
  out = tf.image.crop_and_resize(padded[None], box[None], [0], [n, n])[0]
  out = out * (size / crop) / CELL
  mirrored = out[:, ::-1] * tf.constant([-1.0, 1.0])
  return tf.where(flip, mirrored, out)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(prog="python -m data_pipeline.flow_cache")
  parser.add_argument("--config", required=True)
  parser.add_argument("--out", required=True)
  args, rest = parser.parse_known_args(argv)
  overrides = {}
  for arg in rest:
    key, eq, value = arg.removeprefix("--config.").partition("=")
    if not arg.startswith("--config.") or not eq:
      raise UserError(f"unknown argument {arg!r}; expected --config.KEY=VALUE")
    overrides[key] = value
  index = build(override_config(load_config(args.config), overrides), args.out)
  print(f"{len(index['keys'])} pairs of {index['store']} (gap {index['pair_gap']}) -> "
        f"{args.out}; train with --config.data.flow_cache={args.out}")


if __name__ == "__main__":
  try:
    main(sys.argv[1:])
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
