"""SynthAU's store variants (the tfds builder's configs) and how subjects are dealt to parts,
with no TensorFlow, so that the builder and the generator stream render the same people."""
from __future__ import annotations

import dataclasses

from data_pipeline import folds
from data_pipeline.synthau.identity import subject_id

# The face box enlargement (alignment.alignment_matrix) at which SynthAU renders its faces: the
# median over rendered frames of the enlargement that aligning them on their landmarks would
# take to keep their scale (10th-90th percentile 3.6-4.1; tests/test_synthau_generator.py).
FACE_ENLARGE = 3.85


@dataclasses.dataclass(frozen=True)
class Variant:
  """One store: who is in it, how their clips are rendered."""
  name: str
  description: str
  num_subjects: int = 600
  clips_per_subject: int = 2
  frames_per_clip: int = 16
  image_size: int = 128
  seed: int = 0
  varying: str = "all"  # generator.CLIP_FACTORS: what changes over each clip.


VARIANTS = {v.name: v for v in (
    Variant("small", "600 subjects x 2 clips x 16 frames at 128 px."),
    Variant("tiny", "For tests: 9 subjects x 2 clips x 8 frames, 64 px.", num_subjects=9,
            frames_per_clip=8, image_size=64),
    Variant("small_aus_only", "`small` with only the AUs changing within each clip (head, "
            "camera, light, gaze, blinks, occluder and noise held at the clip's first frame): "
            "the control for temporal self-supervision.", varying="AUs"),
)}


def part_of_subject(subject_index: int) -> int:
  """Subjects are dealt round-robin to parts 1..3, so each part mixes every kind of face."""
  return subject_index % folds.NUM_PARTS + 1


def subjects_of_part(variant: Variant, part: int) -> list[str]:
  """The sorted subject names that `variant` puts in `part`."""
  return sorted(subject_id(s) for s in range(variant.num_subjects)
                if part_of_subject(s) == part)
