"""Tests for the SynthAU procedural face-video generator."""
import dataclasses
import hashlib

import numpy as np
import pytest

from data_pipeline.landmarks import FLIP_PERMUTATION, NUM_LANDMARKS
from data_pipeline.synthau import renderer
from data_pipeline.synthau.common import AUS
from data_pipeline.synthau.generator import generate_clip
from data_pipeline.synthau.identity import sample_identity, subject_id
from data_pipeline.synthau.renderer import render_frames
from data_pipeline.synthau.scene import sample_scene

AU = {au: i for i, au in enumerate(AUS)}
BP4D_RATES = {1: .2, 2: .17, 4: .2, 6: .45, 7: .55, 9: .07, 10: .6, 12: .55, 14: .45, 15: .17,
              17: .34, 23: .17, 24: .15, 25: .35, 26: .15}
BROWS, EYES, NOSE, MOUTH = range(17, 27), range(36, 48), range(27, 36), range(48, 68)
AU_REGION = {1: BROWS, 2: BROWS, 4: BROWS, 6: EYES, 7: EYES, 9: NOSE, 10: MOUTH, 12: MOUTH,
             14: MOUTH, 15: MOUTH, 17: MOUTH, 23: MOUTH, 24: MOUTH, 25: MOUTH, 26: MOUTH}


def _apex_render(subject: int):
  """Frame 0 neutral, frame 1+k: AU k alone at 4.5; same identity, frontal, noise-free scene."""
  num = 1 + len(AUS)
  intensity = np.zeros((num, len(AUS)), np.float32)
  intensity[np.arange(1, num), np.arange(len(AUS))] = 4.5
  scene = sample_scene(np.random.default_rng(0), num, nuisance=False)
  scene = dataclasses.replace(scene, noise_std=0.0)
  return render_frames(sample_identity(subject), intensity, np.zeros((num, 3), np.float32), scene)


@pytest.fixture(scope="module")
def clips():
  return [generate_clip(sample_identity(s), c, num_frames=24) for s in range(3) for c in range(2)]


@pytest.fixture(scope="module")
def apex():
  return {s: _apex_render(s) for s in range(3)}


def test_api_constants():
  assert AUS == (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)
  assert NUM_LANDMARKS == 68
  assert subject_id(7) == "S007"


def test_clip_shapes_dtypes_and_ranges(clips):
  for clip in clips:
    assert clip["image"].shape == (24, 128, 128, 3) and clip["image"].dtype == np.uint8
    assert clip["landmarks"].shape == (24, 68, 2) and clip["landmarks"].dtype == np.float32
    assert clip["intensity"].shape == (24, 15) and clip["intensity"].dtype == np.float32
    assert clip["occurrence"].shape == (24, 15) and clip["occurrence"].dtype == np.uint8
    assert clip["pose"].shape == (24, 3) and clip["pose"].dtype == np.float32
    assert 0 <= clip["intensity"].min() and clip["intensity"].max() <= 5
    np.testing.assert_array_equal(clip["occurrence"], clip["intensity"] >= 2)
    assert np.all(np.abs(clip["pose"]) <= [20, 10, 10])
    assert clip["image"].std() > 20  # not blank


def _digest(arrays: dict[str, np.ndarray]) -> str:
  """SHA-256 of every array's name, dtype, shape and bytes, in name order."""
  h = hashlib.sha256()
  for key in sorted(arrays):
    a = np.ascontiguousarray(arrays[key])
    h.update(f"{key} {a.dtype.str} {a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def test_clip_digest_is_pinned():
  """One clip, bit for bit: pixels, landmarks, intensities, occurrences and pose. Subject 5's clip
  0 has a hand sliding in, stubble and visible ears, and its 20 frames render in two chunks. The
  digest was taken with numpy 2.4 on x86-64; another numpy or CPU may round floats differently."""
  clip = generate_clip(sample_identity(5), 0, num_frames=20, image_size=64)
  assert _digest(clip) == "0f70d5d627f2465adb721d729cd676aa0ec69517bd800055dad7b726ee1a1cac"


def test_other_image_size_scales_landmarks():
  small = generate_clip(sample_identity(1), 0, num_frames=4, image_size=64)
  large = generate_clip(sample_identity(1), 0, num_frames=4, image_size=128)
  assert small["image"].shape == (4, 64, 64, 3)
  np.testing.assert_allclose(small["landmarks"] * 2, large["landmarks"], atol=0.05)
  np.testing.assert_array_equal(small["intensity"], large["intensity"])


def test_deterministic_and_varied():
  identity = sample_identity(4)
  assert identity == sample_identity(4)
  assert identity != sample_identity(5) and identity != sample_identity(4, seed=1)
  a, b = generate_clip(identity, 3, 8), generate_clip(identity, 3, 8)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  for other in (generate_clip(identity, 4, 8), generate_clip(identity, 3, 8, seed=1),
                generate_clip(sample_identity(5), 3, 8)):
    assert not np.array_equal(a["image"], other["image"])
    assert not np.array_equal(a["pose"], other["pose"])


def test_varying_keeps_one_factor_changing_and_the_first_frame():
  identity = sample_identity(2)
  full = generate_clip(identity, 1, 8, image_size=64)
  aus = generate_clip(identity, 1, 8, image_size=64, varying="AUs")
  pose = generate_clip(identity, 1, 8, image_size=64, varying="head pose")
  for clip in (aus, pose):  # The same person, scene and first frame as the clip (to rounding).
    np.testing.assert_array_equal(clip["landmarks"][0], full["landmarks"][0])
    assert np.abs(clip["image"][0].astype(int) - full["image"][0]).max() <= 1
  np.testing.assert_array_equal(aus["intensity"], full["intensity"])
  np.testing.assert_array_equal(aus["pose"], np.repeat(full["pose"][:1], 8, axis=0))
  np.testing.assert_array_equal(pose["pose"], full["pose"])
  np.testing.assert_array_equal(pose["intensity"], np.repeat(full["intensity"][:1], 8, axis=0))
  # Head turns move every landmark; with the head held, landmarks no AU moves stay put.
  moved = lambda clip: np.abs(clip["landmarks"][-1] - clip["landmarks"][0]).max(axis=1)
  assert moved(pose).min() > 0.1 and moved(aus).min() < 0.01
  with pytest.raises(ValueError, match="varying='pose'; choose one of all, AUs, head pose"):
    generate_clip(identity, 1, 8, varying="pose")


def test_global_rng_untouched():
  np.random.seed(123)
  expected = np.random.random()
  np.random.seed(123)
  generate_clip(sample_identity(0), 0, 4)
  assert np.random.random() == expected


def test_landmarks_inside_and_ordered(clips):
  for clip in clips:
    lm = clip["landmarks"]
    x, y = lm[..., 0], lm[..., 1]
    assert lm.min() >= 0 and lm.max() < 128
    assert np.all((x[:, 36] < x[:, 39]) & (x[:, 39] < x[:, 42]) & (x[:, 42] < x[:, 45]))
    assert np.all((x[:, 0] < x[:, 8]) & (x[:, 8] < x[:, 16]) & (x[:, 48] < x[:, 54]))
    assert np.all((x[:, 17] < x[:, 21]) & (x[:, 22] < x[:, 26]) & (x[:, 31] < x[:, 35]))
    assert np.all(y[:, 51] < y[:, 57]) and np.all(y[:, 62] <= y[:, 66] + 1e-3)
    assert np.all(y[:, 17:27].mean(1) < y[:, 36:48].mean(1))       # brows above eyes
    assert np.all(y[:, 36:48].mean(1) < y[:, 30])                  # eyes above nose tip
    assert np.all((y[:, 30] < y[:, 51]) & (y[:, 57] < y[:, 8]))    # nose, mouth, chin
    assert np.all(y[:, 37] < y[:, 41]) and np.all(y[:, 44] < y[:, 46])  # lids


def test_au_moves_landmarks_the_right_way(apex):
  for _, lm in apex.values():
    neutral = lm[0]

    def at(au):
      return lm[1 + AU[au]]

    assert np.all(at(12)[[48, 54], 1] < neutral[[48, 54], 1] - 1)          # corners up
    assert at(12)[54, 0] - at(12)[48, 0] > neutral[54, 0] - neutral[48, 0] + 1  # and out
    assert np.all(at(15)[[48, 54], 1] > neutral[[48, 54], 1] + 1)          # corners down
    for open_au in (25, 26):
      assert at(open_au)[66, 1] - at(open_au)[62, 1] > neutral[66, 1] - neutral[62, 1] + 2
    assert at(26)[57, 1] - at(26)[51, 1] > neutral[57, 1] - neutral[51, 1] + 3
    assert at(26)[8, 1] > neutral[8, 1] + 3                                 # jaw drops
    assert np.all(at(1)[[21, 22], 1] < neutral[[21, 22], 1] - 1)            # inner brows up
    assert np.all(at(2)[[17, 26], 1] < neutral[[17, 26], 1] - 1)            # outer brows up
    assert at(4)[17:27, 1].mean() > neutral[17:27, 1].mean() + 1            # brows down
    assert at(4)[22, 0] - at(4)[21, 0] < neutral[22, 0] - neutral[21, 0] - 1  # and together
    assert at(7)[41, 1] - at(7)[37, 1] < neutral[41, 1] - neutral[37, 1] - 0.5  # eyes narrow
    assert np.all(at(9)[31:36, 1] < neutral[31:36, 1] - 0.5)                # nostrils up
    assert at(10)[51, 1] < neutral[51, 1] - 0.5                             # upper lip up
    assert at(17)[57, 1] < neutral[57, 1] - 0.5                             # lower lip pushed up
    assert at(23)[57, 1] - at(23)[51, 1] < neutral[57, 1] - neutral[51, 1] - 0.5  # thinner lips


def test_au_changes_pixels_near_its_landmarks(apex):
  for image, lm in apex.values():
    image = image.astype(np.float32)
    for au, region in AU_REGION.items():
      k = 1 + AU[au]
      pts = np.concatenate([lm[0, list(region)], lm[k, list(region)]])
      x0, y0 = np.floor(pts.min(0) - 4).astype(int)
      x1, y1 = np.ceil(pts.max(0) + 4).astype(int)
      change = np.abs(image[k, y0:y1, x0:x1] - image[0, y0:y1, x0:x1]).mean()
      assert change > 1.5, (au, change)
      assert np.array_equal(image[k, :8, :8], image[0, :8, :8])  # background untouched


def test_flip_permutation_mirrors_a_frontal_neutral_face():
  perm = FLIP_PERMUTATION
  assert perm.shape == (68,) and sorted(perm) == list(range(68))
  np.testing.assert_array_equal(perm[perm], np.arange(68))
  assert perm[0] == 16 and perm[8] == 8 and perm[36] == 45 and perm[48] == 54 and perm[62] == 62
  scene = sample_scene(np.random.default_rng(0), 1, nuisance=False)
  for subject in range(5):
    _, lm = render_frames(sample_identity(subject), np.zeros((1, 15), np.float32),
                          np.zeros((1, 3), np.float32), scene)
    lm = lm[0]
    centre = lm[27:31, 0].mean()
    mirrored = lm[perm] * [-1, 1] + [2 * centre, 0]
    np.testing.assert_allclose(mirrored, lm, atol=0.05)
    assert np.abs(lm[:, 0] - centre).max() > 20  # a real face, not a vertical line


def test_base_rates_cooccurrence_and_neutral_frames():
  occurrence, intensity = [], []
  for subject in range(20):
    identity = sample_identity(subject)
    for clip in range(4):
      data = generate_clip(identity, clip, num_frames=32, image_size=32)
      occurrence.append(data["occurrence"].astype(bool))
      intensity.append(data["intensity"])
  jumps = np.concatenate([np.abs(np.diff(clip, axis=0)) for clip in intensity])
  occ, inten = np.concatenate(occurrence), np.concatenate(intensity)
  rates = occ.mean(0)
  for au, target in BP4D_RATES.items():
    assert abs(rates[AU[au]] - target) < 0.15, (au, rates[AU[au]], target)
  i6, i12 = AU[6], AU[12]
  assert occ[occ[:, i6], i12].mean() > occ[:, i12].mean() + 0.2
  i1, i2 = AU[1], AU[2]
  assert occ[occ[:, i2], i1].mean() > occ[:, i1].mean() + 0.2
  assert (inten.max(1) < 1).mean() > 0.03                  # some neutral frames
  assert jumps.mean() < 0.1 and np.percentile(jumps, 99) < 1.5  # onset/offset curves, not noise


def test_pose_is_smooth(clips):
  for clip in clips:
    assert np.abs(np.diff(clip["pose"], axis=0)).max() < 3.0


def test_rendering_does_not_depend_on_chunking(monkeypatch):
  """Frames are rendered in chunks sharing layer boxes; every layer's box must hold its shapes."""
  identity = sample_identity(8)
  chunked = generate_clip(identity, 0, 16)["image"].astype(np.int16)
  monkeypatch.setattr(renderer, "_CHUNK", 1)
  single = generate_clip(identity, 0, 16)["image"].astype(np.int16)
  diff = np.abs(chunked - single)
  assert diff.mean() < 0.05 and np.percentile(diff, 99.9) <= 4


@pytest.mark.parametrize("size", [128, 64])
def test_faces_are_rendered_at_the_recorded_face_enlargement(size):
  """FACE_ENLARGE is what `predict` aligns new faces with, so that they are as large in the frame
  as SynthAU's: aligning the rendered frames on their own landmarks at that enlargement keeps
  their scale (median over 40 people)."""
  from data_pipeline.alignment import alignment_matrix
  from data_pipeline.synthau.stores import FACE_ENLARGE
  scales = [np.hypot(*alignment_matrix(points, size, FACE_ENLARGE)[0, :2])
            for s in range(40)
            for points in generate_clip(sample_identity(s), 0, 8, size)["landmarks"]]
  assert abs(np.median(scales) - 1) < 0.02
  assert 0.85 < np.percentile(scales, 10) and np.percentile(scales, 90) < 1.15
