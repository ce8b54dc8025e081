"""The face frame a run was trained on (`face.json` beside `config.json`): the aligned frame's
side, its face box enlargement and the AUs, so that `predict` aligns new faces the way the
training store was aligned, without opening the store (or TensorFlow)."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from data_pipeline import alignment, augment_params, face_detection
from data_pipeline.errors import UserError
from data_pipeline.folds import FoldSplits
from wsrtl_jax import logging_utils

FILE = "face.json"


@dataclasses.dataclass(frozen=True)
class FaceGeometry:
  frame_size: int  # Side of the aligned frames of the store.
  enlarge: float  # Their face box enlargement (alignment.alignment_matrix).
  aus: tuple[int, ...]


def write(workdir: str, splits: FoldSplits) -> None:
  """Records the face frame of the store that `splits` come from."""
  record = {"frame_size": int(splits.frame_size), "enlarge": float(splits.enlarge),
            "aus": [int(au) for au in splits.aus]}
  logging_utils.write_atomic(os.path.join(workdir, FILE), json.dumps(record, indent=2))


def read(workdir: str) -> FaceGeometry:
  """The face frame of the run in `workdir`; UserError naming the file if it is missing or bad."""
  path = os.path.join(workdir, FILE)
  try:
    with open(path) as f:
      record = json.load(f)
    return FaceGeometry(int(record["frame_size"]), float(record["enlarge"]),
                        tuple(int(au) for au in record["aus"]))
  except FileNotFoundError:
    raise UserError(f"'{path}' is missing: it records how the run's faces were aligned; run "
                    "`train` once more with the same --config and --workdir (a finished run "
                    "resumes, writes it and evaluates again)") from None
  except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"'{path}' cannot be read ({e}); rerun `train` with the same --workdir to "
                    "write it anew") from None


class FaceCropper:
  """A face in a photo or video frame -> the network's input, as evaluation sees a store frame:
  the mean landmark template placed in the face box, the frame aligned on it as the store was
  (`geometry`), its centre crop of the training crop size, and the AU centres in input pixels."""

  def __init__(self, geometry: FaceGeometry, crop_size: int, image_size: int):
    self.geometry, self.crop, self.image_size = geometry, crop_size, image_size
    self.top_left = (geometry.frame_size - crop_size) // 2

  @classmethod
  def for_run(cls, geometry: FaceGeometry, data_config) -> "FaceCropper":
    return cls(geometry, augment_params.crop_size(geometry.frame_size, data_config),
               data_config.image_size)

  def __call__(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(crop uint8 [C,C,3], AU centres [len(CENTRE_AUS),2,2] float32) of the face in `box`."""
    aligned, points = alignment.align_face(image, face_detection.template_landmarks(box),
                                           self.geometry.frame_size, self.geometry.enlarge)
    t, c = self.top_left, self.crop
    points = augment_params.to_input_pixels(points, np.float32(t), c, self.image_size)
    return np.ascontiguousarray(aligned[t:t + c, t:t + c]), alignment.au_centres(points)
