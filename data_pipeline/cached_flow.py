"""Reading an offline flow cache (built by `python -m data_pipeline.flow_cache`): the cached flow
of a pair, checked against the data it was built for, and cropped, resized and mirrored exactly as
the pair's pixels, so the step gets targets in the units of the on-device ones."""
from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import tensorflow as tf

from data_pipeline.errors import UserError

CELL = 4  # Flow is stored averaged over CELL x CELL pixels, as the flow head predicts it.


def pair_key(sequence, frame) -> str:
  sequence = sequence.decode() if isinstance(sequence, bytes) else str(sequence)
  return f"{sequence}/{int(frame)}"


def description(store: str, config: ml_collections.ConfigDict, splits) -> dict:
  """What a cache was built for: the store, training subjects, pairing, frame size and method."""
  return {"store": store, "subjects": list(splits.train.subjects),
          "pair_gap": int(config.data.pair_gap),
          "pair_reference": config.data.get("pair_reference", "next"),
          "frame_size": int(splits.frame_size),
          "method": "farneback", "cell": CELL}


class FlowLookup:
  """The cached flows of `cache_dir`, checked against the store `store`, `config`'s fold and
  gap."""

  def __init__(self, cache_dir: str, store: str, config: ml_collections.ConfigDict, splits):
    path = os.path.join(cache_dir, "index.json")
    if not os.path.isfile(path):
      raise UserError(f"data.flow_cache='{cache_dir}' has no index.json; build it with "
                      "python -m data_pipeline.flow_cache --config ... --out DIR")
    with open(path) as f:
      index = json.load(f)
    index.setdefault("pair_reference", "next")  # Caches that do not say hold (t, t + gap).
    wanted = description(store, config, splits)
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
    key = pair_key(sequence, frame)
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
