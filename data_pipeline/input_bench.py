"""`bench --input`: frames per second of each training stream (frames, pairs, clips) at the
configured size, next to a bare tf.data JPEG decode of the same images, measured in one run."""
from __future__ import annotations

import itertools
import os
import time

import ml_collections
import tensorflow as tf

from data_pipeline import input_pipeline

STREAMS = ("labelled", "pairs", "clips")


def _frames_per_second(batches, frames_per_batch: int, warmup: int, measured: int) -> float:
  batches = iter(batches)
  for _ in itertools.islice(batches, warmup):
    pass
  start = time.perf_counter()
  for _ in itertools.islice(batches, measured):
    pass
  return measured * frames_per_batch / (time.perf_counter() - start)


def _bare_decode(builder, splits: input_pipeline.FoldSplits, batch_size: int):
  """The same training images, read from memory and decoded, nothing else."""
  ds = input_pipeline.records(builder, splits.train).map(lambda ex: ex["image"])
  ds = ds.cache().repeat().map(lambda jpeg: tf.io.decode_jpeg(jpeg, channels=3),
                               num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def benchmark_input(config: ml_collections.ConfigDict, batches: int = 100) -> list[dict]:
  """One record per stream: frames/s, frames/s per core, and the share of the bare decode rate."""
  builder = input_pipeline.load_builder(config)
  splits = input_pipeline.fold_splits(config, builder)
  size, cores = config.global_batch_size, len(os.sched_getaffinity(0))
  warmup = max(5, batches // 5)
  bare = _frames_per_second(_bare_decode(builder, splits, size), size, warmup, batches)
  records = [{"stream": "bare JPEG decode", "frames_per_s": bare}]
  for kind in STREAMS:
    frames, _ = input_pipeline.unit_frames(kind, config.data)
    stream = input_pipeline.train_stream(config, builder, splits, kind, size)
    rate = _frames_per_second(stream, size * frames, warmup, max(1, batches // frames))
    records.append({"stream": kind, "frames_per_s": rate, "of_bare_decode": rate / bare})
  for record in records:
    record.update(frames_per_s_per_core=record["frames_per_s"] / cores, cores=cores,
                  image_size=config.data.image_size, store=input_pipeline.store_name(config),
                  frame_size=splits.frame_size)
  return records
