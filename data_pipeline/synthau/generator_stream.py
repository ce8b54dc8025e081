"""SynthAU's cross-identity clips rendered by the generator, with no TensorFlow: the input of CLP
pretraining where TensorFlow is not installed (`data.source="generator"`), such as an
accelerator host that has JAX alone.

The same units as `input_pipeline.train_stream(kind="cross_identity")` on the store of the same
name: two clips of different training subjects, `data.clip_length` frames `data.clip_stride`
apart within one sequence, each clip with one crop, flip and colour jitter. Every frame passes
the store's JPEG encoding (quality 95, 4:2:0); PIL decodes it with the accurate DCT where
TensorFlow's default is the fast one, so the pixels differ from the store's by about 1.3 grey
levels on average (PIL's are the closer to the rendered frame). The draws come from numpy, seeded
by (seed, step), so a resumed run sees exactly the batches it would have, but they are not
tf.data's: the two sources give different batches from the same distribution. Mirrors
input_pipeline's `load_builder`, `fold_splits` and `train_stream`, so the training loop takes
either.
"""
from __future__ import annotations

import io
import itertools
import time
from typing import Iterator

import jax
import ml_collections
import numpy as np
from PIL import Image

from data_pipeline import augment_params, folds
from data_pipeline.synthau import stores
from data_pipeline.synthau.common import AUS
from data_pipeline.synthau.generator import generate_clip
from data_pipeline.synthau.identity import sample_identity, subject_index
from data_pipeline.errors import UserError

JPEG_QUALITY = 95  # tf.image.encode_jpeg's default, which the tfds store uses (PIL's 4:2:0 too).


def load_builder(config: ml_collections.ConfigDict) -> stores.Variant:
  """The SynthAU variant that `data.name` names ("synthau" is `small`); only CLP pretraining
  reads from the generator."""
  name, _, variant = config.data.name.partition("/")
  if name != "synthau" or (variant or "small") not in stores.VARIANTS:
    raise UserError(f"data.source='generator' renders SynthAU only; data.name="
                    f"{config.data.name!r} is not one of "
                    f"{', '.join('synthau/' + v for v in stores.VARIANTS)}")
  method = config.get("method", "supervised")
  if method != "clp":
    raise UserError(f"data.source='generator' streams CLP's cross-identity clips only; "
                    f"method={method!r} needs the store (data.source='store')")
  return stores.VARIANTS[variant or "small"]


def fold_splits(config: ml_collections.ConfigDict, variant: stores.Variant) -> folds.FoldSplits:
  """The fold's subjects, the same as input_pipeline.fold_splits gives on the built store."""
  try:
    return folds.part_splits(
        config.data.fold, config.data.num_val_subjects,
        lambda split: sorted(s for p in split.split("+")
                             for s in stores.subjects_of_part(variant, int(p[len("part"):]))),
        aus=tuple(AUS), frame_size=variant.image_size, frame_step=1,
        enlarge=stores.FACE_ENLARGE)
  except ValueError as e:
    raise UserError(str(e)) from None


def _jpeg_round_trip(frame: np.ndarray) -> np.ndarray:
  buffer = io.BytesIO()
  Image.fromarray(frame).save(buffer, "JPEG", quality=JPEG_QUALITY)
  return np.asarray(Image.open(buffer).convert("RGB"))


def render_sequences(variant: stores.Variant, subjects: tuple[str, ...]) -> np.ndarray:
  """uint8 [subjects, clips_per_subject, frames_per_clip, S, S, 3]: every sequence of
  `subjects` as the store holds it."""
  start = time.time()
  out = np.empty((len(subjects), variant.clips_per_subject, variant.frames_per_clip,
                  variant.image_size, variant.image_size, 3), np.uint8)
  for i, name in enumerate(subjects):
    identity = sample_identity(subject_index(name), seed=variant.seed)
    for c in range(variant.clips_per_subject):
      clip = generate_clip(identity, c, num_frames=variant.frames_per_clip,
                           image_size=variant.image_size, seed=variant.seed,
                           varying=variant.varying)["image"]
      out[i, c] = [_jpeg_round_trip(frame) for frame in clip]
  print(f"Rendered {out.shape[0] * out.shape[1]} SynthAU/{variant.name} sequences "
        f"({out.shape[0] * out.shape[1] * out.shape[2]} frames) in {time.time() - start:.0f} s.",
        flush=True)
  return out


def train_stream(config: ml_collections.ConfigDict, variant: stores.Variant,
                 splits: folds.FoldSplits, kind: str, local_batch_size: int,
                 start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Endless cross-identity batches of this host from `start_step`: image uint8 [B, 2, T, C, C,
  3] (the crops), flip [B, 2], jitter [B, 2, 3], identity [B, 2]; the accelerator resizes,
  flips and jitters (wsrtl_jax.image_ops.finish_images)."""
  if kind != "cross_identity":
    raise UserError(f"data.source='generator' streams cross-identity clips only, not {kind!r}")
  d = config.data
  for key, value, low, high in (("clip_length", d.clip_length, 1, None),
                                ("clip_stride", d.clip_stride, 1, None),
                                ("crop_fraction", d.crop_fraction, 1 / variant.image_size, 1)):
    if value < low or (high is not None and value > high):
      raise UserError(f"data.{key}={value}; expected at least {low:g}"
                      + (f" and at most {high:g}" if high is not None else ""))
  frames, span = variant.frames_per_clip, (d.clip_length - 1) * d.clip_stride
  if span >= frames:
    raise UserError(f"no clips unit ({d.clip_length} frames {d.clip_stride} apart) fits in "
                    f"SynthAU/{variant.name}'s {frames}-frame sequences; lower "
                    f"data.clip_length={d.clip_length}, data.clip_stride={d.clip_stride}")
  subjects = splits.train.subjects
  if len(subjects) < 2:
    raise UserError(f"cross-identity units need two subjects; {splits.train.split} of "
                    f"SynthAU/{variant.name} gives {len(subjects)}")
  video = render_sequences(variant, subjects)
  crop = augment_params.crop_size(variant.image_size, d)
  identities = np.array([subject_index(s) for s in subjects], np.int32)
  offsets = np.arange(d.clip_length) * d.clip_stride
  b = local_batch_size * jax.process_count()  # Every host draws the global batch,
  first = jax.process_index() * local_batch_size  # and keeps its own rows.
  rows = slice(first, first + local_batch_size)
  low, high = augment_params.jitter_bounds(d.color_jitter)
  for step in itertools.count(start_step):
    rng = np.random.default_rng([config.seed, step])
    who = np.stack([rng.choice(len(subjects), 2, replace=False) for _ in range(b)])
    clip = rng.integers(0, variant.clips_per_subject, (b, 2))
    start = rng.integers(0, frames - span, (b, 2))
    corner = rng.integers(0, variant.image_size - crop + 1, (b, 2, 2))
    flip = (rng.random((b, 2)) < 0.5) & bool(d.flip)
    jitter = rng.uniform(low, high, (b, 2, 3))
    image = np.stack([np.stack([
        video[who[u, j], clip[u, j], start[u, j] + offsets,
              corner[u, j, 0]:corner[u, j, 0] + crop, corner[u, j, 1]:corner[u, j, 1] + crop]
        for j in (0, 1)]) for u in range(b)[rows]])
    yield {"image": image, "flip": flip[rows], "jitter": jitter[rows].astype(np.float32),
           "identity": identities[who[rows]]}
