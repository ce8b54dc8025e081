"""tfds builder `synthau`: SynthAU face videos, stored as frames in three subject-exclusive
parts."""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import folds
from data_pipeline.synthau import stores
from data_pipeline.synthau.common import AUS
from data_pipeline.synthau.generator import generate_clip
from data_pipeline.synthau.identity import sample_identity, subject_id


@dataclasses.dataclass(kw_only=True)
class SynthAUConfig(tfds.core.BuilderConfig):
  """A tfds config with the fields of stores.Variant (which holds the values)."""
  num_subjects: int
  clips_per_subject: int
  frames_per_clip: int
  image_size: int
  seed: int
  varying: str


class Synthau(tfds.core.GeneratorBasedBuilder):
  """SynthAU: procedural face videos with known AU intensities, landmarks and identities."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "First release.",
                   "1.1.0": "Records in sequence order, so pairs and clips can be cut."}
  BUILDER_CONFIGS = [SynthAUConfig(**dataclasses.asdict(v)) for v in stores.VARIANTS.values()]
  DEFAULT_CONFIG_NAME = "small"

  def _info(self) -> tfds.core.DatasetInfo:
    size, num_aus = self.builder_config.image_size, len(AUS)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
            "landmarks": tfds.features.Tensor(shape=(68, 2), dtype=np.float32),
            "au_intensity": tfds.features.Tensor(shape=(num_aus,), dtype=np.float32),
            # 1 present, 0 absent, -1 unknown (never in SynthAU; real datasets have it).
            "au_occurrence": tfds.features.Tensor(shape=(num_aus,), dtype=np.int8),
            "pose": tfds.features.Tensor(shape=(3,), dtype=np.float32),
            "subject": tfds.features.Text(),
            "identity": np.int32,
            "sequence": tfds.features.Text(),
            "frame": np.int32,
        }),
        supervised_keys=None,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(aus=list(AUS), landmarks_approximate=False,
                                        frame_step=1),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is generated.
    return {f"part{p}": self._generate_examples(p) for p in range(1, folds.NUM_PARTS + 1)}

  def _generate_examples(self, part: int):
    c = self.builder_config
    for s in range(c.num_subjects):
      if stores.part_of_subject(s) != part:
        continue
      identity = sample_identity(s, seed=c.seed)
      name = subject_id(s)
      for clip_index in range(c.clips_per_subject):
        clip = generate_clip(identity, clip_index, num_frames=c.frames_per_clip,
                             image_size=c.image_size, seed=c.seed, varying=c.varying)
        sequence = f"{name}/C{clip_index:02d}"
        for t in range(c.frames_per_clip):
          yield f"{sequence}/{t:04d}", {
              "image": clip["image"][t], "landmarks": clip["landmarks"][t],
              "au_intensity": clip["intensity"][t],
              "au_occurrence": clip["occurrence"][t].astype(np.int8),
              "pose": clip["pose"][t], "subject": name, "identity": s,
              "sequence": sequence, "frame": t,
          }
