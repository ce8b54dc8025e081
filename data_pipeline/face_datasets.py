"""tfds builders for the datasets users bring: `bp4d`, `disfa`, `gft` (labelled, one config per
fold) and `face_videos` (unlabelled). Importing this module registers them.

Every store holds aligned face crops in sequence order (frames of a sequence are consecutive
records, by frame number), which is what lets the pipelines cut pairs and clips without an index.
"""
from __future__ import annotations

import abc
import dataclasses
import os
import sys
import time

import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import aligned_cache, folds, raw_sources
from data_pipeline.au_sets import AU_SETS
from data_pipeline.errors import EmptySplitError
from data_pipeline.progress import Progress

VAL_FRACTION = 0.1  # Share of the training subjects held out for validation (at least one).

_LAYOUTS = """
The builder reads the first of these layouts it finds in manual_dir:

1. A CSV `frames.csv` at the top: columns `path` (relative to manual_dir), `subject`, `sequence`,
   `frame`, one column per AU (`AU1`, `AU2`, ...; 1, 0, and 9/-1/empty = unknown), optional
   `part` ({parts}), optional landmarks `x0..x(N-1)`, `y0..y(N-1)` (N = 68, 49 or 66).
2. ME-GraphAU's lists: `list/{DS}_{{train,test}}_img_path_fold<k>.txt` (image paths relative to
   `img/`) and `list/{DS}_{{train,test}}_label_fold<k>.txt` (space-separated 0/1 per image, AU order
   {aus}). A subject's part is read from the fold whose test list holds it.
3. The raw release. {raw}
   Landmarks (optional; 68, 49 or DISFA's 66 points): {landmarks}, one row per frame:
   `frame,x0,...,x(N-1),y0,...,y(N-1)` (header optional; an empty or all-zero row = none).

Frames without landmarks take those of a frame at most 5 frames away in the same sequence, else
the main face is detected (OpenCV Haar) and a mean 68-point template placed in its box; the store
records which (feature `landmark_source`). Frames whose image is missing or unreadable, or where
no face is found, are skipped; `prepare` prints how many and why.

Then: python -m wsrtl_jax prepare --dataset {name} --manual_dir DIR [--data_dir DIR]
"""


def frame_features(image_size: int, num_aus: int) -> tfds.features.FeaturesDict:
  """What every prepared frame holds (SynthAU has the same, plus pose)."""
  return tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(image_size, image_size, 3), encoding_format="jpeg"),
      "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
      # given, neighbour (borrowed from a frame nearby) or detected (template in the face box).
      "landmark_source": tfds.features.Text(),
      "au_intensity": tfds.features.Tensor(shape=(num_aus,), dtype=np.float32),  # -1 = not given
      "au_occurrence": tfds.features.Tensor(shape=(num_aus,), dtype=np.int8),  # -1 = unknown
      "subject": tfds.features.Text(),
      "identity": np.int32,
      "sequence": tfds.features.Text(),
      "frame": np.int32,
  })


@dataclasses.dataclass
class FoldConfig(tfds.core.BuilderConfig):
  test_group: str = "3"  # The subject group (part) this fold tests on.
  image_size: int = 256  # Side of the aligned crop (ME-GraphAU's 256; train crops 224 of it).
  enlarge: float = 2.9  # JAA-Net's box enlargement.


def _fold_configs() -> list[FoldConfig]:
  return [FoldConfig(name=f"fold{k}", test_group=str(folds.test_part(k)),
                     description=f"Fold {k}: tests on part {folds.test_part(k)}, trains on the "
                     "others, validation held out of the training subjects.") for k in (1, 2, 3)]


class _AlignProgress:
  """A bar on a terminal, else a line every 10 s, over the sequences being aligned."""

  def __init__(self, total: int):
    self.bar = Progress(total, 0, unit="sequence")
    self.last_line = time.time()

  def __call__(self, done: int, total: int, name: str) -> None:
    self.bar.update(done, name)
    if not self.bar.tty and (done == total or time.time() - self.last_line > 10):
      self.last_line = time.time()
      print(self.bar.line(done, f"aligned ({name})"), file=sys.stderr, flush=True)
    if done == total:
      self.bar.close()


class _FaceStore(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared machinery: discover the raw source, align it into the cache, write the splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  DATASET = ""

  @abc.abstractmethod
  def _discover(self, manual_dir: str) -> raw_sources.SourceIndex:
    """The frames, labels and landmarks the raw source in `manual_dir` holds."""

  @abc.abstractmethod
  def _groups(self, index: raw_sources.SourceIndex, summary: dict) -> dict[str, list[str]]:
    """Split name -> subjects, given what alignment kept (aligned_cache.summarize)."""

  def _info(self) -> tfds.core.DatasetInfo:
    aus = AU_SETS.get(self.DATASET, ())
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__,
        features=frame_features(self.builder_config.image_size, len(aus)),
        disable_shuffling=True,  # Sequence order is what pairs and clips are cut from.
        metadata=tfds.core.MetadataDict(aus=list(aus), frame_step=1))

  def _split_generators(self, dl_manager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    index = self._discover(manual_dir)
    c = self.builder_config
    directory = aligned_cache.cache_dir(os.fspath(dl_manager.download_dir), self.DATASET,
                                        manual_dir, c.image_size, c.enlarge)
    paths = aligned_cache.prepare(index, directory, c.image_size, c.enlarge,
                                  _AlignProgress(len(index.sequences)))
    summary = aligned_cache.summarize(index, paths)
    self.info.metadata["summary"] = summary
    frames = summary["frames_per_subject"]
    groups = self._groups(index, summary)
    for split, members in groups.items():
      if not any(frames.get(s) for s in members):
        lost = aligned_cache.describe_lost(summary["subjects_without_frames"], members)
        raise self._empty(split, f"its subjects {lost} have none" if members
                          else "no subject is in it")
    self.info.metadata["split_subjects"] = {
        split: sorted(s for s in members if frames.get(s)) for split, members in groups.items()}
    subjects = sorted({seq.subject for seq in index.sequences})
    identities = {s: i for i, s in enumerate(subjects)}
    sequences = list(zip(index.sequences, paths))
    return {split: self._generate_examples(sequences, set(members), identities)
            for split, members in groups.items()}

  def _empty(self, split: str, why: str) -> EmptySplitError:
    return EmptySplitError(f"{self.name}/{self.builder_config.name} not built: the {split} "
                           f"split would have no frames: {why}")

  def _generate_examples(self, sequences, subjects: set[str], identities: dict[str, int]):
    for seq, path in sequences:
      if seq.subject not in subjects:
        continue
      aligned = aligned_cache.load(path)
      for i, frame in enumerate(aligned.frames):
        yield f"{seq.sequence}/{int(frame):08d}", {
            "image": aligned.jpeg[i], "landmarks": aligned.landmarks[i],
            "landmark_source": aligned_cache.LANDMARK_SOURCES[aligned.landmark_source[i]],
            "au_intensity": aligned.intensity[i], "au_occurrence": aligned.labels[i],
            "subject": seq.subject, "identity": identities[seq.subject],
            "sequence": seq.sequence, "frame": int(frame)}


class _LabelledStore(_FaceStore, skip_registration=True):
  BUILDER_CONFIGS = _fold_configs()

  def _discover(self, manual_dir: str) -> raw_sources.SourceIndex:
    return raw_sources.discover(self.DATASET, manual_dir)

  def _groups(self, index: raw_sources.SourceIndex, summary: dict) -> dict[str, list[str]]:
    """Validation is held out of the training subjects that have frames after alignment."""
    test_group = self.builder_config.test_group
    test = sorted(s for s, g in index.subject_group.items() if g == test_group)
    pool = sorted(s for s, g in index.subject_group.items() if g != test_group)
    usable = [s for s in pool if summary["frames_per_subject"].get(s)]
    lost = [s for s in pool if s not in usable]
    if len(usable) < 2:
      described = aligned_cache.describe_lost(summary["subjects_without_frames"], lost)
      raise self._empty("validation" if usable else "train",
                        f"of the training subjects only {', '.join(usable) or 'none'} have frames"
                        + (f" ({described} have none)" if lost else "")
                        + "; training and validation need one each")
    train, val = folds.carve_validation(usable, max(1, round(VAL_FRACTION * len(usable))))
    return {"train": train + lost, "validation": val, "test": test}


def _instructions(name: str, raw: str, landmarks: str, parts: str) -> str:
  return _LAYOUTS.format(raw=raw, landmarks=landmarks, name=name, parts=parts,
                         DS=name.upper(), aus=" ".join(f"AU{a}" for a in AU_SETS[name]))


class Bp4d(_LabelledStore):
  """BP4D-Spontaneous: 41 subjects, 12 AUs (occurrence), 3 subject-exclusive folds."""
  DATASET = "bp4d"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions(
      "bp4d", raw="Frames `<subject>/<task>/<frame>.jpg` (e.g. `F001/T1/2440.jpg`) and labels "
      "`AUCoding/AU_OCC/<subject>_<task>.csv` (header row of AU numbers, first column the frame "
      "number; 0, 1, 9 = unknown).", landmarks="`landmarks/<subject>_<task>.csv`",
      parts="1, 2, 3; default: the standard partition")


class Disfa(_LabelledStore):
  """DISFA, left camera: 27 subjects, 8 AUs (positive at intensity >= 2), 3 folds."""
  DATASET = "disfa"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions(
      "disfa", raw="Videos `Videos_LeftCamera/LeftVideoSN001_comp.avi` or frame folders "
      "`SN001/<i>.png` (numbered from 0 like the video's frames, or from 1 if there is no 0), "
      "and labels `ActionUnit_Labels/SN001/SN001_au<k>.txt` (lines `frame,intensity`, frames "
      "counted from 1).", landmarks="`landmarks/SN001.csv`",
      parts="1, 2, 3; default: the standard partition")


class Gft(_LabelledStore):
  """GFT: 10 AUs (occurrence), the official train/test subjects."""
  DATASET = "gft"
  BUILDER_CONFIGS = [FoldConfig(name="official", test_group="test",
                                description="The official train/test subjects.")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = _instructions(
      "gft", raw="Not supported for GFT: use 2 or 3.", landmarks="(as for BP4D)",
      parts="`train` or `test`; required, no partition is built in")


@dataclasses.dataclass
class VideoConfig(tfds.core.BuilderConfig):
  identity_from_top_folder: bool = False
  image_size: int = 256
  enlarge: float = 2.9


class FaceVideos(_FaceStore):
  """Unlabelled face videos: the main face of each clip, tracked, aligned, frames in order."""
  DATASET = "face_videos"
  BUILDER_CONFIGS = [
      VideoConfig(name="default", description="Each video (or frame folder) is its own identity."),
      VideoConfig(name="voxceleb", identity_from_top_folder=True,
                  description="One identity per top-level folder: <id>/<youtube_id>/<clip>.mp4."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put videos (.mp4 .avi .mov .mkv) or frame folders (images named by frame number) in manual_dir,
  at any depth. With config `voxceleb`, each top-level folder is one identity
  (`<id>/<youtube_id>/<clip>.mp4`). Landmarks are not read: the main face is detected and tracked,
  and a mean 68-point template placed in its box (metadata: landmarks_approximate).
  Then: python -m wsrtl_jax prepare --dataset face_videos[/voxceleb] --manual_dir DIR
  """

  def _info(self) -> tfds.core.DatasetInfo:
    info = super()._info()
    info.metadata["landmarks_approximate"] = True
    return info

  def _discover(self, manual_dir: str) -> raw_sources.SourceIndex:
    return raw_sources.discover_videos(manual_dir, self.builder_config.identity_from_top_folder)

  def _groups(self, index: raw_sources.SourceIndex, summary: dict) -> dict[str, list[str]]:
    return {"train": sorted({seq.subject for seq in index.sequences})}
