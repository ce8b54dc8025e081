"""Alignment, landmark conversion and AU centres against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from data_pipeline.alignment import (CENTRE_AUS, MEAN_TEMPLATE_68, align_face, alignment_matrix,
                                     au_centre_operands, au_centres, convert_to_68,
                                     transform_points)

SIZE = 200
ENLARGE = 2.9
TILT = np.deg2rad(30.0)
SHIFT = np.array([140.0, 90.0])


def _rotate(points, angle):
  c, s = np.cos(angle), np.sin(angle)
  return points @ np.array([[c, -s], [s, c]]).T


def _upright_face() -> np.ndarray:
  """Landmarks of an upright face whose 5 key points are placed by hand: eye centres (-30, 0) and
  (30, 0), nose tip (0, 30), mouth corners (-25, 70) and (25, 70). The key-point box is 60 wide
  and 70 high, centred at (0, 35)."""
  points = np.random.default_rng(0).uniform(-40, 80, (68, 2))
  ring = np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]], np.float64)
  points[36:42] = ring + [-30, 0]
  points[42:48] = ring + [30, 0]
  points[30] = [0, 30]
  points[48], points[54] = [-25, 70], [25, 70]
  return points


def _tilted_face() -> np.ndarray:
  """The upright face rotated by TILT (eyes tilted 30 degrees) and shifted into an image."""
  return _rotate(_upright_face(), TILT) + SHIFT


def test_alignment_matrix_is_the_hand_computed_similarity():
  matrix = alignment_matrix(_tilted_face(), SIZE, ENLARGE)
  half_size = 0.5 * ENLARGE * 70
  scale = (SIZE - 1) / 2 / half_size
  c, s = np.cos(TILT), np.sin(TILT)
  np.testing.assert_allclose(matrix[:, :2], scale * np.array([[c, s], [-s, c]]), atol=1e-6)
  # Every point lands where the upright face, centred on its key-point box, puts it.
  expected = scale * (_upright_face() - [0, 35]) + (SIZE - 1) / 2
  np.testing.assert_allclose(transform_points(_tilted_face(), matrix), expected, atol=1e-3)


def test_aligned_eyes_are_level_and_key_box_is_centred_with_the_enlarged_size():
  aligned = transform_points(_tilted_face(), alignment_matrix(_tilted_face(), SIZE, ENLARGE))
  left_eye, right_eye = aligned[36:42].mean(0), aligned[42:48].mean(0)
  assert abs(left_eye[1] - right_eye[1]) < 1e-3 and right_eye[0] > left_eye[0]
  key = np.stack([left_eye, right_eye, aligned[30], aligned[48], aligned[54]])
  low, high = key.min(0), key.max(0)
  np.testing.assert_allclose((low + high) / 2, [(SIZE - 1) / 2] * 2, atol=1e-3)
  assert max(high - low) == pytest.approx((SIZE - 1) / ENLARGE, abs=1e-3)


@pytest.mark.parametrize("landmarks, message", [
    (np.zeros((68, 2)), "both eye centres at one point"),
    (np.full((68, 2), np.inf), "expected finite"),
    (np.zeros((49, 2)), r"\(49, 2\)"),
], ids=["empty", "infinite", "49-point"])
def test_alignment_refuses_unusable_landmarks(landmarks, message):
  with pytest.raises(ValueError, match=message):
    alignment_matrix(landmarks, SIZE)


def test_align_face_moves_a_drawn_dot_where_transform_points_says():
  image = np.full((240, 320, 3), 30, np.uint8)
  dot = np.array([150.0, 110.0])
  image[108:113, 148:153] = 255
  landmarks = _tilted_face()
  aligned_image, aligned_landmarks = align_face(image, landmarks, SIZE, ENLARGE)
  assert aligned_image.shape == (SIZE, SIZE, 3) and aligned_image.dtype == np.uint8
  assert aligned_landmarks.shape == (68, 2) and aligned_landmarks.dtype == np.float32
  weight = np.clip(aligned_image[..., 0].astype(np.float64) - 128, 0, None)
  ys, xs = np.mgrid[:SIZE, :SIZE]
  found = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
  expected = transform_points(dot, alignment_matrix(landmarks, SIZE, ENLARGE))
  assert np.linalg.norm(found - expected) < 1.0
  np.testing.assert_allclose(aligned_landmarks,
                             transform_points(landmarks, alignment_matrix(landmarks, SIZE)),
                             atol=1e-4)


def test_align_face_fills_outside_the_image_with_grey():
  image = np.zeros((30, 30, 3), np.uint8)
  face = _upright_face() * 0.2 + [15, 8]  # key box 12 x 14 centred on the image: the aligned
  aligned_image, _ = align_face(image, face, 64)  # square, 2.9 times larger, reaches past it
  assert (aligned_image[0, 0] == 128).all() and (aligned_image[32, 32] == 0).all()


def test_49_points_map_to_their_68_indices():
  points49 = np.random.default_rng(1).uniform(0, 300, (49, 2)).astype(np.float32)
  full = convert_to_68(points49)
  assert full.shape == (68, 2) and full.dtype == np.float32
  for i in range(43):
    np.testing.assert_array_equal(full[i + 17], points49[i])
  np.testing.assert_array_equal(full[[61, 62, 63, 65, 66, 67]], points49[43:])


def test_66_points_map_to_their_68_indices():
  points66 = np.random.default_rng(2).uniform(0, 300, (66, 2)).astype(np.float32)
  full = convert_to_68(points66)
  np.testing.assert_array_equal(full[:60], points66[:60])
  np.testing.assert_array_equal(full[[61, 62, 63, 65, 66, 67]], points66[60:])


def test_68_points_pass_through():
  points = np.random.default_rng(3).uniform(0, 300, (68, 2))
  np.testing.assert_allclose(convert_to_68(points), points, rtol=1e-6)


@pytest.mark.parametrize("kept", [
    [i for i in range(68) if i >= 17 and i not in (60, 64)],  # 49 points
    [i for i in range(68) if i not in (60, 64)],  # 66 points
])
def test_missing_points_come_from_the_template_fitted_to_the_known_ones(kept):
  """A posed template (scaled, rotated, shifted) minus its missing points converts back to the
  whole posed template: the fill is placed by the known points."""
  posed = _rotate(MEAN_TEMPLATE_68.astype(np.float64) * 150, np.deg2rad(10)) + [60, 40]
  np.testing.assert_allclose(convert_to_68(posed[kept]), posed, atol=1e-3)


@pytest.mark.parametrize("points, message", [
    (np.zeros((50, 2)), r"\(50, 2\).*68, 49, 66"),
    (np.zeros((68, 3)), r"\(68, 3\)"),
    (np.full((68, 2), np.nan), "non-finite"),
])
def test_bad_landmarks_are_refused_clearly(points, message):
  with pytest.raises(ValueError, match=message):
    convert_to_68(points)


def test_mean_template_is_a_level_symmetric_face_in_the_unit_square():
  assert MEAN_TEMPLATE_68.shape == (68, 2) and MEAN_TEMPLATE_68.dtype == np.float32
  assert MEAN_TEMPLATE_68.min() >= 0 and MEAN_TEMPLATE_68.max() <= 1
  left_eye, right_eye = MEAN_TEMPLATE_68[36:42].mean(0), MEAN_TEMPLATE_68[42:48].mean(0)
  assert left_eye[1] == pytest.approx(right_eye[1], abs=1e-4)
  # Brows above eyes above nose tip above mouth above chin.
  y = MEAN_TEMPLATE_68[:, 1]
  assert y[19] < left_eye[1] < y[30] < y[51] < y[57] < y[8]


def _ruler_face() -> np.ndarray:
  """Hand-made landmarks with ruler |x39 - x42| = 30."""
  points = np.random.default_rng(4).uniform(0, 100, (68, 2)).astype(np.float32)
  points[39], points[42] = [40, 50], [70, 52]
  points[21], points[22] = [45, 30], [65, 31]
  points[19], points[24] = [30, 28], [80, 27]
  points[41], points[46] = [33, 55], [77, 56]
  points[48], points[54] = [38, 90], [72, 91]
  points[56], points[58] = [60, 100], [48, 101]
  return points


def test_au_centres_follow_the_hand_computed_rules():
  centres = au_centres(_ruler_face(), aus=(1, 4, 6, 12, 26))
  assert centres.shape == (5, 2, 2)
  np.testing.assert_allclose(centres[0], [[45, 15], [65, 16]])     # AU1: 21, 22 up ruler / 2
  np.testing.assert_allclose(centres[1], [[30, 38], [80, 37]])     # AU4: 19, 24 down ruler / 3
  np.testing.assert_allclose(centres[2], [[33, 85], [77, 86]])     # AU6: 41, 46 down ruler
  np.testing.assert_allclose(centres[3], [[38, 90], [72, 91]])     # AU12: 48, 54
  np.testing.assert_allclose(centres[4], [[60, 115], [48, 116]])   # AU26: 56, 58 down ruler / 2


def test_au_centres_are_batched_over_leading_dimensions():
  faces = np.stack([_ruler_face(), _ruler_face() * 2 + 5, _ruler_face()[::-1]]).reshape(3, 1, 68, 2)
  batched = au_centres(faces)
  assert batched.shape == (3, 1, len(CENTRE_AUS), 2, 2)
  for i in range(3):
    np.testing.assert_allclose(batched[i, 0], au_centres(faces[i, 0]), rtol=1e-6)


def test_au_centre_operands_give_the_same_centres():
  landmarks = _ruler_face()
  selection, shift = au_centre_operands(CENTRE_AUS)
  assert selection.shape == (2 * len(CENTRE_AUS), 68) and shift.shape == (2 * len(CENTRE_AUS),)
  ruler = abs(landmarks[39, 0] - landmarks[42, 0])
  centres = selection @ landmarks + np.stack([np.zeros_like(shift), shift * ruler], axis=1)
  np.testing.assert_allclose(centres.reshape(-1, 2, 2), au_centres(landmarks), rtol=1e-6)


def test_every_rule_names_two_points():
  selection, _ = au_centre_operands(CENTRE_AUS)
  np.testing.assert_array_equal(selection.sum(1), 1)
  assert CENTRE_AUS == (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)


def test_au_centres_refuse_other_landmark_sets():
  with pytest.raises(ValueError, match=r"\(49, 2\).*\[\.\.\., 68, 2\]"):
    au_centres(np.zeros((49, 2)))


def test_unknown_au_is_refused_naming_it():
  with pytest.raises(ValueError, match=r"AU \[5\].*\(1, 2, 4"):
    au_centres(_ruler_face(), aus=(1, 5))

