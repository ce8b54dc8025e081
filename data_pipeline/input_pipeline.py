"""tf.data pipelines from a prepared tfds store: seeded, repeatable, resumable, sharded per host.

TensorFlow is used for input only; it is kept off the accelerators.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Iterator

import jax
from jax.experimental import multihost_utils
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import ml_collections

from data_pipeline import augment
from wsrtl_jax.errors import UserError

tf.config.set_visible_devices([], "GPU")

NUM_PARTS = 3
LABEL_HASH_BUCKETS = 100_000


@dataclasses.dataclass(frozen=True)
class FoldSplits:
  """Subject-exclusive train / validation / test of one fold, as tfds splits + subject lists."""
  aus: tuple[int, ...]
  frame_size: int
  train_split: str
  test_split: str
  train_subjects: tuple[str, ...]
  val_subjects: tuple[str, ...]
  test_subjects: tuple[str, ...]


def load_builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The tfds builder `config.data.name`, prepared on first use (SynthAU is generated) by
  process 0 alone while the other hosts wait."""
  import data_pipeline.synthau.synthau_dataset_builder  # noqa: F401  Registers `synthau`.
  make = lambda: tfds.builder(config.data.name, data_dir=config.data.data_dir or None)
  if jax.process_index() == 0:
    make().download_and_prepare()
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("tfds store prepared")
  return make()


def _subjects(builder: tfds.core.DatasetBuilder, split: str) -> list[str]:
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  names = ds.map(lambda ex: ex["subject"], num_parallel_calls=tf.data.AUTOTUNE)
  return sorted({s.decode() for s in names.as_numpy_iterator()})


def fold_splits(config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder
                ) -> FoldSplits:
  """Fold k tests on part 4-k (DESIGN.md 3.1); validation subjects come from the other parts."""
  fold = config.data.fold
  if fold not in (1, 2, 3):
    raise UserError(f"data.fold must be 1, 2 or 3, got {fold}")
  test_part = NUM_PARTS + 1 - fold
  train_split = "+".join(f"part{p}" for p in range(1, NUM_PARTS + 1) if p != test_part)
  test_split = f"part{test_part}"
  train_pool = _subjects(builder, train_split)
  k = config.data.num_val_subjects
  if not 0 <= k < len(train_pool):
    raise UserError(f"data.num_val_subjects={k} must be below the {len(train_pool)} "
                     "training subjects")
  val = [train_pool[i] for i in np.linspace(0, len(train_pool) - 1, k).round().astype(int)] if k else []
  return FoldSplits(
      aus=tuple(builder.info.metadata["aus"]),
      frame_size=builder.info.features["image"].shape[0],
      train_split=train_split, test_split=test_split,
      train_subjects=tuple(s for s in train_pool if s not in val), val_subjects=tuple(val),
      test_subjects=tuple(_subjects(builder, test_split)))


def _keep_label(example: dict, fraction: float) -> tf.Tensor:
  """Whether a training frame keeps its labels: a fixed hash of its id, so runs agree."""
  key = tf.strings.join([example["sequence"], tf.strings.as_string(example["frame"])], "/")
  bucket = tf.strings.to_hash_bucket_fast(key, LABEL_HASH_BUCKETS)
  return bucket < int(round(fraction * LABEL_HASH_BUCKETS))


def _records(builder, split: str, subjects: tuple[str, ...]) -> tf.data.Dataset:
  """Encoded records of `subjects` from `split`, in a fixed order, every host the same."""
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={"image": tfds.decode.SkipDecoding()})
  wanted = tf.constant(list(subjects))
  return ds.filter(lambda ex: tf.reduce_any(tf.equal(ex["subject"], wanted)))


def _host_share(ds: tf.data.Dataset) -> tf.data.Dataset:
  return ds.shard(jax.process_count(), jax.process_index())


def _labelled(ds: tf.data.Dataset, fraction: float) -> tf.data.Dataset:
  def relabel(ex):
    keep = _keep_label(ex, fraction)
    ex = dict(ex)
    ex["au_occurrence"] = tf.where(keep, ex["au_occurrence"], -tf.ones_like(ex["au_occurrence"]))
    return ex
  return ds.map(relabel)


def training_labels(config: ml_collections.ConfigDict, builder, splits: FoldSplits) -> np.ndarray:
  """[N, A] labels (1, 0, -1 unknown) of this host's training frames, for the AU weights."""
  ds = _labelled(_host_share(_records(builder, splits.train_split, splits.train_subjects)),
                 config.data.label_fraction)
  labels = ds.map(lambda ex: ex["au_occurrence"]).batch(4096)
  return np.concatenate(list(labels.as_numpy_iterator())).astype(np.int32)


def train_batches(config: ml_collections.ConfigDict, builder, splits: FoldSplits,
                  local_batch_size: int, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled, augmented, labelled training batches of this host, from `start_step`.

  Order and augmentation depend only on the seed and the position in the global stream, so a
  resumed run skips the consumed records (before decoding) and sees exactly the batches it would
  have. Every host shuffles the same encoded records and keeps every P-th one after the shuffle,
  so the global batch holds the same frames whatever the number of hosts.
  """
  ds = _labelled(_records(builder, splits.train_split, splits.train_subjects),
                 config.data.label_fraction)
  ds = ds.filter(lambda ex: tf.reduce_any(ex["au_occurrence"] >= 0))  # Labelled frames only.
  ds = ds.cache().repeat().shuffle(config.data.shuffle_buffer, seed=config.seed)
  ds = _host_share(ds.enumerate()).skip(start_step * local_batch_size)
  preprocess = functools.partial(augment.train_example, frame_size=splits.frame_size,
                                 config=config.data, seed=config.seed)
  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local_batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return ds.as_numpy_iterator()


def eval_batches(config: ml_collections.ConfigDict, builder, splits: FoldSplits, which: str,
                 local_batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """One pass over `which` ('validation' or 'test'), centre-cropped, last batch padded.

  Each batch has `mask` (1 for real frames) so padding never enters the metrics.
  """
  split, subjects = {"validation": (splits.train_split, splits.val_subjects),
                     "test": (splits.test_split, splits.test_subjects)}[which]
  preprocess = functools.partial(augment.eval_example, frame_size=splits.frame_size,
                                 config=config.data)
  ds = _host_share(_records(builder, split, subjects))
  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local_batch_size).prefetch(tf.data.AUTOTUNE)
  for batch in ds.as_numpy_iterator():
    n = batch["label"].shape[0]
    pad = local_batch_size - n
    batch = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}
    batch["mask"] = (np.arange(local_batch_size) < n).astype(np.int32)
    yield batch
