"""tf.data pipelines from a prepared tfds store: seeded, repeatable, resumable, sharded per host.

TensorFlow is used for input only; it is kept off the accelerators.
"""
from __future__ import annotations

import functools
from typing import Iterator

import jax
from jax.experimental import multihost_utils
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import ml_collections

from data_pipeline import augment, cached_flow, folds
from data_pipeline.folds import FoldSplits, Part
from data_pipeline.errors import UserError
from data_pipeline.synthau.stores import FACE_ENLARGE

tf.config.set_visible_devices([], "GPU")

LABEL_HASH_BUCKETS = 100_000
KINDS = ("labelled", "unlabelled", "pairs", "clips", "cross_identity")
PAIR_REFERENCES = ("next", "first")  # data.pair_reference: (t, t + pair_gap) or (t, first frame).


def store_name(config: ml_collections.ConfigDict) -> str:
  """`data.name`, with the fold config added for stores built one config per fold."""
  from data_pipeline import face_datasets  # noqa: F401  Registers bp4d, disfa, gft, face_videos.
  import data_pipeline.synthau.synthau_dataset_builder  # noqa: F401  Registers `synthau`.
  name = config.data.name
  if "/" not in name:
    try:
      configs = [c.name for c in tfds.builder_cls(name).BUILDER_CONFIGS]
    except tfds.core.registered.DatasetNotFoundError:
      raise UserError(f"data.name={name!r} is not a dataset we know; known: "
                      "synthau, bp4d, disfa, gft, face_videos") from None
    if f"fold{config.data.fold}" in configs:
      name = f"{name}/fold{config.data.fold}"
  return name


def load_builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The tfds store of `config.data`: SynthAU is generated on first use (by process 0 alone while
  the other hosts wait); the datasets users bring must have been prepared with `prepare`."""
  name = store_name(config)
  make = lambda: tfds.builder(name, data_dir=config.data.data_dir or None)
  builder = make()
  if not builder.is_prepared():
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
      raise UserError(f"the store {name!r} is not prepared in {builder.data_dir_root}; run "
                      f"python -m wsrtl_jax prepare --dataset {name.split('/')[0]} "
                      "--manual_dir DIR (same --data_dir)")
    if jax.process_index() == 0:
      builder.download_and_prepare()
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("tfds store prepared")
  return make()


def _subjects(builder: tfds.core.DatasetBuilder, split: str) -> list[str]:
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  names = ds.map(lambda ex: ex["subject"], num_parallel_calls=tf.data.AUTOTUNE)
  return sorted({s.decode() for s in names.as_numpy_iterator()})


def fold_splits(config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder
                ) -> FoldSplits:
  """The fold's subjects. Stores with `train/validation/test` splits (one config per fold) carry
  them; SynthAU's `part1..3` are split here: fold k tests on part 4-k, and `num_val_subjects`
  evenly spaced training subjects are held out for validation."""
  store = dict(aus=tuple(builder.info.metadata["aus"]),
               frame_size=builder.info.features["image"].shape[0],
               frame_step=int(builder.info.metadata.get("frame_step", 1)),
               enlarge=float(getattr(builder.builder_config, "enlarge", FACE_ENLARGE)))
  if "train" not in builder.info.splits:
    try:
      return folds.part_splits(config.data.fold, config.data.num_val_subjects,
                               lambda split: _subjects(builder, split), **store)
    except ValueError as e:
      raise UserError(str(e)) from None
  return FoldSplits(**store, **{role: Part(role, tuple(_subjects(builder, role))
                                           if role in builder.info.splits else ())
                                for role in ("train", "validation", "test")})


def keeps_label(example: dict, fraction: float) -> tf.Tensor:
  """Whether a training frame keeps its labels: a fixed hash of its id, so runs agree."""
  key = tf.strings.join([example["sequence"], tf.strings.as_string(example["frame"])], "/")
  bucket = tf.strings.to_hash_bucket_fast(key, LABEL_HASH_BUCKETS)
  return bucket < int(round(fraction * LABEL_HASH_BUCKETS))


def records(builder, part: Part) -> tf.data.Dataset:
  """Encoded records of `part`'s subjects, in store order (sequences in frame order), every
  host the same."""
  ds = builder.as_dataset(split=part.split, shuffle_files=False,
                          decoders={"image": tfds.decode.SkipDecoding()})
  wanted = tf.constant(list(part.subjects) or [""])
  keys = ("image", "landmarks", "au_occurrence", "identity", "subject", "sequence", "frame")
  return ds.filter(lambda ex: tf.reduce_any(tf.equal(ex["subject"], wanted))).map(
      lambda ex: {k: ex[k] for k in keys})


def _host_share(ds: tf.data.Dataset) -> tf.data.Dataset:
  return ds.shard(jax.process_count(), jax.process_index())


def _labelled(ds: tf.data.Dataset, fraction: float) -> tf.data.Dataset:
  def relabel(ex):
    keep = keeps_label(ex, fraction)
    ex = dict(ex)
    ex["au_occurrence"] = tf.where(keep, ex["au_occurrence"], -tf.ones_like(ex["au_occurrence"]))
    return ex
  return ds.map(relabel)


def _labelled_only(ds: tf.data.Dataset, fraction: float) -> tf.data.Dataset:
  """The frames that keep their labels."""
  return _labelled(ds, fraction).filter(lambda ex: tf.reduce_any(ex["au_occurrence"] >= 0))


def _unlabelled(ex: dict) -> dict:
  return {**ex, "au_occurrence": -tf.ones_like(ex["au_occurrence"])}


def training_labels(config: ml_collections.ConfigDict, builder, splits: FoldSplits) -> np.ndarray:
  """[N, A] labels (1, 0, -1 unknown) of this host's training frames, for the AU weights."""
  ds = _labelled(_host_share(records(builder, splits.train)), config.data.label_fraction)
  labels = ds.map(lambda ex: ex["au_occurrence"]).batch(4096)
  return np.concatenate(list(labels.as_numpy_iterator())).astype(np.int32)


def unit_frames(kind: str, data: ml_collections.ConfigDict) -> tuple[int, int]:
  """(frames per unit, record offset between them) of a stream kind."""
  if kind == "pairs":
    return 2, data.pair_gap
  if kind in ("clips", "cross_identity"):
    return data.clip_length, data.clip_stride
  return 1, 1


def _units(ds: tf.data.Dataset, num_frames: int, offset: int, frame_step: int) -> tf.data.Dataset:
  """Units of `num_frames` records `offset` apart, kept only where they are frames of one
  sequence exactly `offset * frame_step` frame numbers apart (no gap, no sequence boundary).

  The store is in sequence order, so shifted copies of the stream zipped together are sliding
  windows; nothing is decoded here, so the windows that are dropped cost nothing.
  """
  if num_frames == 1:
    return ds.map(lambda ex: {k: v[None] for k, v in ex.items()})
  copies = tuple(ds.skip(j * offset) for j in range(num_frames))
  def stack(*frames):
    return {k: tf.stack([f[k] for f in frames]) for k in frames[0]}
  def contiguous(unit):
    steps = tf.cast(tf.range(num_frames) * offset * frame_step, tf.int32)
    return tf.logical_and(tf.reduce_all(tf.equal(unit["sequence"], unit["sequence"][0])),
                          tf.reduce_all(tf.equal(unit["frame"] - unit["frame"][0], steps)))
  return tf.data.Dataset.zip(copies).map(stack).filter(contiguous)


def pair_reference(data: ml_collections.ConfigDict) -> str:
  """`data.pair_reference` ("next" where a config lacks it); UserError for another value."""
  reference = data.get("pair_reference", "next")
  if reference not in PAIR_REFERENCES:
    raise UserError(f"data.pair_reference={reference!r}; choose one of "
                    f"{', '.join(map(repr, PAIR_REFERENCES))}")
  return reference


def _reference_units(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Pairs (t, the first frame of t's sequence) of every record t, in store order (the first
  frame is paired with itself). A scan over the encoded records: nothing is decoded here."""
  spec = ds.element_spec
  empty = {k: tf.zeros(v.shape, v.dtype) for k, v in spec.items()}
  empty["sequence"] = tf.constant("\0 no sequence")

  def pair(first, ex):
    same = tf.equal(first["sequence"], ex["sequence"])
    first = {k: tf.where(same, first[k], ex[k]) for k in ex}
    return first, {k: tf.stack([ex[k], first[k]]) for k in ex}
  return ds.scan(empty, pair)


def _pair_units(ds: tf.data.Dataset, data: ml_collections.ConfigDict, frame_step: int
                ) -> tf.data.Dataset:
  """The unlabelled pairs of `ds` that `data.pair_reference` asks for: (t, t + pair_gap), or
  (t, the first frame of t's sequence)."""
  if pair_reference(data) == "first":
    return _reference_units(ds)
  return _units(ds, 2, data.pair_gap, frame_step)


def _check_units_exist(config, builder, splits: FoldSplits, kind: str) -> None:
  """Raises UserError when no training sequence is long enough for one unit of `kind` (the
  stream would otherwise wait forever for its first unit)."""
  if kind == "pairs" and pair_reference(config.data) == "first":
    return  # Every frame has a first frame of its sequence.
  num_frames, offset = unit_frames(kind, config.data)
  units = _units(records(builder, splits.train), num_frames, offset, splits.frame_step)
  if num_frames > 1 and not list(units.take(1).as_numpy_iterator()):
    keys = ("pair_gap",) if kind == "pairs" else ("clip_length", "clip_stride")
    settings = ", ".join(f"data.{k}={config.data[k]}" for k in keys)
    raise UserError(f"no {kind} unit ({num_frames} frames {offset} apart) fits in any training "
                    f"sequence of {config.data.name}; lower {settings}")


def _shuffled_units(config, builder, splits: FoldSplits, kind: str, seed: int) -> tf.data.Dataset:
  ds = records(builder, splits.train)
  if kind == "labelled":
    ds = _labelled_only(ds, config.data.label_fraction)
  else:
    ds = ds.map(_unlabelled) if kind == "unlabelled" else _labelled(ds, config.data.label_fraction)
  ds = ds.cache().repeat()
  ds = (_pair_units(ds, config.data, splits.frame_step) if kind == "pairs"
        else _units(ds, *unit_frames(kind, config.data), splits.frame_step))
  return ds.shuffle(config.data.shuffle_buffer, seed=seed)


def train_stream(config: ml_collections.ConfigDict, builder, splits: FoldSplits, kind: str,
                 local_batch_size: int, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled, augmented training batches of this host, from `start_step`.

  `kind`: `labelled` frames (label_fraction applies), `unlabelled` frames (every training frame,
  labels hidden), frame `pairs` (t, t + pair_gap; or t and the first frame of its sequence,
  `data.pair_reference="first"`), `clips` of clip_length frames clip_stride
  apart, or `cross_identity`: two clips of different subjects. Arrays are [B, ...] per frame,
  [B, T, ...] for pairs and clips, [B, 2, T, ...] for cross-identity; a unit's frames share one
  crop, flip and colour jitter.

  Order and augmentation depend only on the seed, the kind and the position in the global
  stream, so a resumed run skips the consumed units (before decoding) and sees exactly the
  batches it would have. Every host shuffles the same encoded records and keeps every P-th unit
  after the shuffle, so the global batch is the same whatever the number of hosts.
  """
  if kind not in KINDS:
    raise UserError(f"unknown stream kind {kind!r}; known: {', '.join(KINDS)}")
  _check_units_exist(config, builder, splits, kind)
  seed = config.seed + 1000 * KINDS.index(kind)
  num_frames, _ = unit_frames(kind, config.data)
  decode = functools.partial(augment.decode_unit, num_frames=num_frames,
                             frame_size=splits.frame_size, config=config.data, seed=seed)
  augment_batch = functools.partial(augment.augment_batch, frame_size=splits.frame_size,
                                    config=config.data)
  if kind == "cross_identity":
    ds = tf.data.Dataset.zip(_shuffled_units(config, builder, splits, kind, seed),
                             _shuffled_units(config, builder, splits, kind, seed + 1))
    ds = ds.filter(lambda a, b: tf.not_equal(a["subject"][0], b["subject"][0]))
    process = lambda i, ab: tf.nest.map_structure(
        lambda *x: tf.stack(x), *(_decoded(decode(2 * i + j, ab[j])) for j in (0, 1)))
    finish = lambda batch: _unstack_pairs(augment_batch(_stack_pairs(batch)))
  else:
    ds = _shuffled_units(config, builder, splits, kind, seed)
    process = lambda i, unit: _decoded(decode(i, unit))
    finish = lambda batch: _squeezed(augment_batch(batch), num_frames == 1)
  if kind == "pairs" and config.data.get("flow_cache"):
    process = _with_cached_flow(process, config, splits)
  ds = _host_share(ds.enumerate()).skip(start_step * local_batch_size)
  ds = ds.map(process, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local_batch_size, drop_remainder=True)
  ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
  return ds.as_numpy_iterator()


def _with_cached_flow(process, config: ml_collections.ConfigDict, splits: FoldSplits):
  """`process` that also attaches each pair's cached flow, cropped, resized and mirrored with
  its pixels (data_pipeline.cached_flow)."""
  lookup = cached_flow.FlowLookup(config.data.flow_cache, store_name(config), config, splits)
  crop = augment.crop_size(splits.frame_size, config.data)

  def with_flow(index, unit):
    out = process(index, unit)
    flow = lookup.flow(unit["sequence"][0], unit["frame"][0])
    out["flow"] = cached_flow.cropped_flow(flow, out["top_left"], out["flip"], crop,
                                           config.data.image_size)
    return out
  return with_flow


def pair_units(config: ml_collections.ConfigDict, builder, splits: FoldSplits) -> tf.data.Dataset:
  """Every training pair (see `data.pair_reference`) once, in store order, undecoded (for
  caches)."""
  return _pair_units(records(builder, splits.train), config.data, splits.frame_step)


_DECODED_KEYS = ("image", "landmarks", "au_occurrence", "frame", "identity", "top_left", "flip",
                 "jitter")


def _decoded(unit: dict) -> dict:
  """What batching needs of a decoded unit (strings such as the sequence are dropped)."""
  return {k: unit[k] for k in _DECODED_KEYS}


def _stack_pairs(batch: dict) -> dict:
  """[B, 2, ...] -> [2B, ...], so each clip of a cross-identity pair is a unit of its own."""
  return {k: tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], axis=0)) for k, v in batch.items()}


def _unstack_pairs(batch: dict) -> dict:
  return {k: tf.reshape(v, tf.concat([[-1, 2], tf.shape(v)[1:]], axis=0))
          for k, v in batch.items()}


def _squeezed(batch: dict, squeeze: bool) -> dict:
  """Single frames drop the unit axis: [B, S, S, 3] rather than [B, 1, S, S, 3]."""
  per_unit = ("identity", "flip", "jitter")
  return {k: v[:, 0] if squeeze and k not in per_unit else v for k, v in batch.items()}


def train_batches(config: ml_collections.ConfigDict, builder, splits: FoldSplits,
                  local_batch_size: int, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Labelled training frames (the supervised stream)."""
  return train_stream(config, builder, splits, "labelled", local_batch_size, start_step)


def eval_batches(config: ml_collections.ConfigDict, builder, splits: FoldSplits, which: str,
                 local_batch_size: int, labelled_only: bool = False
                 ) -> Iterator[dict[str, np.ndarray]]:
  """One pass over `which` ('train', 'validation' or 'test'), centre-cropped, last batch
  padded; `labelled_only`: just the frames that keep their labels (`data.label_fraction`).

  Each batch has `mask` (1 for real frames) so padding never enters the metrics, and
  `sequence_id` (a hash of each frame's sequence name).
  """
  decode = functools.partial(augment.decode_unit, num_frames=1, frame_size=splits.frame_size,
                             config=config.data, seed=None)
  augment_batch = functools.partial(augment.augment_batch, frame_size=splits.frame_size,
                                    config=config.data)
  ds = records(builder, getattr(splits, which))
  if labelled_only:
    ds = _labelled_only(ds, config.data.label_fraction)
  ds = _host_share(_units(ds, 1, 1, splits.frame_step))

  def decoded(unit):
    sequence_id = tf.cast(tf.strings.to_hash_bucket_fast(unit["sequence"], 2**31 - 1), tf.int32)
    return {**_decoded(decode(0, unit)), "sequence_id": sequence_id}

  ds = ds.map(decoded, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local_batch_size).map(lambda batch: {
      **_squeezed(augment_batch(batch), True), "sequence_id": batch["sequence_id"][:, 0]})
  ds = ds.prefetch(tf.data.AUTOTUNE)
  for batch in ds.as_numpy_iterator():
    n = batch["label"].shape[0]
    pad = local_batch_size - n
    batch = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}
    batch["mask"] = (np.arange(local_batch_size) < n).astype(np.int32)
    yield batch
