"""SynthAU people: face shape, colouring, hair, resting expression and expressiveness, sampled
deterministically per subject. Geometry is in canonical units (see ``face_model``)."""
from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline.synthau.common import AUS, _COL, _rng
from data_pipeline.synthau.expressions import _EVENTS

_IDENTITY_TAG = 0x1D


def subject_id(subject_index: int) -> str:
  """Stable subject name, e.g. 7 -> 'S007'."""
  return f"S{subject_index:03d}"


def subject_index(subject: str) -> int:
  """The inverse of subject_id: 'S007' -> 7."""
  return int(subject[1:])


_SKIN = np.array([[0.98, 0.85, 0.76], [0.94, 0.76, 0.64], [0.87, 0.66, 0.50], [0.77, 0.54, 0.38],
                  [0.62, 0.41, 0.27], [0.46, 0.30, 0.19], [0.32, 0.20, 0.13]])
_HAIR = np.array([[0.05, 0.045, 0.04], [0.16, 0.10, 0.06], [0.32, 0.20, 0.11], [0.52, 0.37, 0.21],
                  [0.80, 0.66, 0.42], [0.55, 0.22, 0.09], [0.55, 0.54, 0.52], [0.82, 0.81, 0.78]])
_IRIS = np.array([[0.30, 0.18, 0.09], [0.13, 0.08, 0.05], [0.42, 0.33, 0.14], [0.28, 0.42, 0.28],
                  [0.28, 0.44, 0.66], [0.42, 0.48, 0.52]])
_SHORT, _MEDIUM, _LONG, _BUZZ, _VOLUME = range(5)


@dataclasses.dataclass(frozen=True)
class Identity:
  """Per-person face shape, appearance, resting expression and expressiveness.

  Geometry is in canonical units. ``resting_au`` are pseudo-intensities (0..5, AU order) that
  shape the NEUTRAL face like an AU would (raised or low brows, narrow eyes, down-turned mouth,
  thin lips) without being labelled, so appearance alone does not reveal AUs.
  """

  subject_index: int
  seed: int
  face_w: float
  head_top: float
  chin_y: float
  jaw_square: float
  chin_taper: float
  eye_dx: float
  eye_w: float
  eye_up: float
  eye_down: float
  eye_tilt: float
  brow_y: float
  brow_arch: float
  brow_thick: float
  brow_inner: float
  brow_outer: float
  nose_len: float
  nose_w: float
  mouth_y: float
  mouth_w: float
  upper_lip: float
  lower_lip: float
  ear_size: float
  neck_w: float
  skin: tuple[float, float, float]
  lip: tuple[float, float, float]
  hair: tuple[float, float, float]
  brow: tuple[float, float, float]
  iris: tuple[float, float, float]
  cloth: tuple[float, float, float]
  hair_style: int
  hairline: float
  hair_part: float
  hair_volume: float
  hair_len: float
  stubble: float
  resting_au: tuple[float, ...]
  forehead_lines: float
  glabella_lines: float
  nasolabial: float
  crow_lines: float
  event_weights: tuple[float, ...]
  expressivity: float


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
  """RGB skin tone from very light to very dark, with a slight random tint."""
  pos = rng.uniform(0, len(_SKIN) - 1)
  i = min(int(pos), len(_SKIN) - 2)
  tone = _SKIN[i] + (pos - i) * (_SKIN[i + 1] - _SKIN[i])
  return np.clip(tone * rng.normal(1.0, 0.03, 3), 0, 1)


def _sample_hair_colour(rng: np.random.Generator, skin: np.ndarray, age: float) -> np.ndarray:
  """Hair colour, correlated with skin tone (darker skin: darker hair) and grey with age."""
  dark_skin = skin.mean() < 0.5
  probs = [0.6, 0.3, 0.1, 0, 0, 0] if dark_skin else [0.2, 0.25, 0.2, 0.13, 0.12, 0.1]
  colour = _HAIR[rng.choice(6, p=probs)]
  if age > 0.8:
    colour = _HAIR[6 + int(rng.integers(2))]
  return np.clip(colour * rng.normal(1.0, 0.06, 3), 0, 1)


def _resting_traits(rng: np.random.Generator) -> np.ndarray:
  """Neutral-face features that mimic AUs (pseudo-intensities, AU order)."""
  rest = np.zeros(len(AUS))
  for aus, prob, lo, hi in (((1, 2), 0.2, 0.8, 2.0), ((4,), 0.2, 0.8, 2.0), ((7,), 0.2, 0.8, 2.2),
                            ((15,), 0.2, 0.8, 2.0), ((23,), 0.15, 0.8, 1.8),
                            ((12,), 0.12, 0.5, 1.3), ((6,), 0.1, 0.5, 1.2)):
    if rng.random() < prob:
      level = rng.uniform(lo, hi)
      for au in aus:
        rest[_COL[au]] = level * rng.uniform(0.6, 1.0)
  return rest


def _hair_layout(rng: np.random.Generator, chin_y: float) -> tuple[int, float, float, float, float]:
  """Hair style, hairline height, parting offset, volume and length (canonical y of the ends)."""
  style = int(rng.choice(5, p=[0.32, 0.25, 0.25, 0.08, 0.10]))
  hairline = rng.uniform(-0.98, -0.72) if rng.random() > 0.12 else rng.uniform(-0.6, -0.52)
  volume = {_SHORT: (0.05, 0.12), _MEDIUM: (0.07, 0.15), _LONG: (0.06, 0.14), _BUZZ: (0.0, 0.02),
            _VOLUME: (0.2, 0.32)}[style]
  length = {_SHORT: (0.2, 0.45), _MEDIUM: (chin_y - 0.2, chin_y + 0.2), _LONG: (1.9, 2.8),
            _BUZZ: (0.1, 0.2), _VOLUME: (0.6, 1.2)}[style]
  return style, hairline, rng.uniform(-0.35, 0.35), rng.uniform(*volume), rng.uniform(*length)


def sample_identity(subject_index: int, seed: int = 0) -> Identity:
  """Deterministically sample one synthetic person."""
  rng = _rng(seed, subject_index, _IDENTITY_TAG)
  u = rng.uniform
  age = u(0, 1)
  skin = _skin_tone(rng)
  hair = _sample_hair_colour(rng, skin, age)
  eye_dx, eye_w = u(0.36, 0.42), u(0.29, 0.34)
  nose_len = u(0.46, 0.6)
  chin_y = u(1.32, 1.5)
  lip = np.clip(skin * np.array([0.86, 0.63, 0.62]) + np.array([0.06, 0.0, 0.02]) * u(0, 1), 0, 1)
  style, hairline, part, volume, length = _hair_layout(rng, chin_y)
  rest = _resting_traits(rng)
  weights = rng.gamma(2.0, 0.5, len(_EVENTS))
  return Identity(
      subject_index=subject_index, seed=seed, face_w=u(0.86, 0.98), head_top=u(1.32, 1.45),
      chin_y=chin_y, jaw_square=u(0.0, 0.45), chin_taper=u(0.0, 0.35), eye_dx=eye_dx, eye_w=eye_w,
      eye_up=u(0.075, 0.105), eye_down=u(0.035, 0.055), eye_tilt=u(-0.02, 0.04),
      brow_y=u(-0.3, -0.23), brow_arch=u(0.025, 0.08), brow_thick=u(0.06, 0.1),
      brow_inner=u(0.1, 0.15), brow_outer=eye_dx + eye_w / 2 + u(0.05, 0.11),
      nose_len=nose_len, nose_w=u(0.15, 0.22), mouth_y=nose_len + 0.12 + u(0.22, 0.3),
      mouth_w=u(0.36, 0.45), upper_lip=u(0.07, 0.11), lower_lip=u(0.09, 0.14),
      ear_size=u(0.85, 1.15), neck_w=u(0.5, 0.62),
      skin=tuple(skin), lip=tuple(lip), hair=tuple(hair),
      brow=tuple(np.minimum(hair, 0.45) * u(0.55, 0.9)),
      iris=tuple(_IRIS[rng.integers(len(_IRIS))]),
      cloth=tuple(rng.uniform(0.1, 0.85, 3)), hair_style=style, hairline=hairline, hair_part=part,
      hair_volume=volume, hair_len=length,
      stubble=u(0.15, 0.4) if rng.random() < 0.2 else 0.0,
      resting_au=tuple(rest),
      forehead_lines=0.18 * age + (u(0.1, 0.3) if rng.random() < 0.2 else 0.0),
      glabella_lines=0.12 * age + (u(0.1, 0.3) if rng.random() < 0.15 else 0.0),
      nasolabial=0.04 + 0.12 * age + (u(0.1, 0.25) if rng.random() < 0.25 else 0.0),
      crow_lines=0.1 * age, event_weights=tuple(weights), expressivity=u(0.75, 1.15),
  )
