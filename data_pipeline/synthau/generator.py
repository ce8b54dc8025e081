"""SynthAU: procedural face videos with known facial action-unit (AU) intensities.

Numpy only. A clip is produced in four steps, each driven by its own deterministic RNG stream:
  1. AU intensities over time: overlapping expression events (smile, surprise, ...) with
     onset-apex-offset envelopes, so AUs co-occur and have imbalanced base rates like BP4D.
  2. Head pose over time (smooth yaw/pitch/roll) and a nuisance ``Scene`` (light, background,
     camera jitter, gaze, blinks, occluder, sensor noise).
  3. 68 iBUG landmarks: a parametric 3-D face of the identity, deformed by the AUs, rotated and
     projected orthographically into the image.
  4. Rendering FROM those landmarks (curves fitted through them, local frames spanned by them), so
     pixels and landmarks agree.

Conventions: landmarks are (x, y) pixels with pixel centres at integer coordinates, y down.
Pose is (yaw, pitch, roll) in degrees: yaw > 0 turns the face towards image right, pitch > 0
tilts it down, roll > 0 rotates it clockwise in the image. The canonical face frame has its origin
between the eye centres, x to image right, y down, z towards the camera, one unit ~ half a face
width.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from data_pipeline.au_sets import AU_SETS
from data_pipeline.landmarks import FLIP_PERMUTATION, NUM_LANDMARKS  # noqa: F401  Re-exported.

AUS: tuple[int, ...] = AU_SETS["synthau"]

_COL = {au: i for i, au in enumerate(AUS)}
_IDENTITY_TAG, _CLIP_TAG = 0x1D, 0xC1
_S_FRAC = 0.285                      # pixels per canonical unit, as a fraction of the image size
_EYE_ROW = 0.39                      # image row of the eye line, as a fraction of the image size
_C0 = 0.15                           # canonical y of the head-ellipse centre
_PIVOT = np.array([0.0, 0.25, -0.35])  # head rotation centre (canonical units)
_CHUNK = 16                          # frames rendered together (keeps arrays cache-sized)
_F32 = np.float32


def _rng(*key: int) -> np.random.Generator:
  """Independent generator for a key such as (seed, subject, clip, tag); no global state."""
  return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def subject_id(subject_index: int) -> str:
  """Stable subject name, e.g. 7 -> 'S007'."""
  return f"S{subject_index:03d}"


def subject_index(subject: str) -> int:
  """The inverse of subject_id: 'S007' -> 7."""
  return int(subject[1:])


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------

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
                            ((15,), 0.2, 0.8, 2.0), ((23,), 0.15, 0.8, 1.8), ((12,), 0.12, 0.5, 1.3),
                            ((6,), 0.1, 0.5, 1.2)):
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
      brow=tuple(np.minimum(hair, 0.45) * u(0.55, 0.9)), iris=tuple(_IRIS[rng.integers(len(_IRIS))]),
      cloth=tuple(rng.uniform(0.1, 0.85, 3)), hair_style=style, hairline=hairline, hair_part=part,
      hair_volume=volume, hair_len=length,
      stubble=u(0.15, 0.4) if rng.random() < 0.2 else 0.0,
      resting_au=tuple(rest),
      forehead_lines=0.18 * age + (u(0.1, 0.3) if rng.random() < 0.2 else 0.0),
      glabella_lines=0.12 * age + (u(0.1, 0.3) if rng.random() < 0.15 else 0.0),
      nasolabial=0.04 + 0.12 * age + (u(0.1, 0.25) if rng.random() < 0.25 else 0.0),
      crow_lines=0.1 * age, event_weights=tuple(weights), expressivity=u(0.75, 1.15),
  )


# --------------------------------------------------------------------------------------------
# AU intensity dynamics
# --------------------------------------------------------------------------------------------

# Expression events: name, expected starts per frame, {AU: (probability of taking part, weight
# range)}. Rates were fitted so that occurrence base rates come out roughly like BP4D's.
_EVENTS: tuple[tuple[str, float, dict[int, tuple[float, float, float]]], ...] = (
    ("smile", 0.0400, {6: (0.85, 0.6, 1.0), 12: (1.0, 0.8, 1.0), 7: (0.6, 0.5, 0.9), 10: (0.7, 0.5, 0.9),
                       25: (0.5, 0.5, 1.0), 14: (0.4, 0.4, 0.8), 26: (0.1, 0.4, 0.8)}),
    ("surprise", 0.0042, {1: (1.0, 0.8, 1.0), 2: (0.9, 0.7, 1.0), 25: (0.6, 0.6, 1.0), 26: (0.45, 0.5, 1.0)}),
    ("anger", 0.0050, {4: (1.0, 0.8, 1.0), 7: (0.8, 0.6, 1.0), 23: (0.6, 0.6, 1.0), 24: (0.5, 0.6, 1.0),
                       17: (0.5, 0.5, 1.0), 10: (0.3, 0.4, 0.8)}),
    ("sadness", 0.0030, {1: (0.85, 0.6, 1.0), 4: (0.8, 0.5, 0.9), 15: (0.9, 0.7, 1.0), 17: (0.7, 0.5, 1.0),
                         14: (0.2, 0.4, 0.8)}),
    ("disgust", 0.0030, {9: (1.0, 0.7, 1.0), 10: (1.0, 0.7, 1.0), 4: (0.5, 0.5, 0.9), 7: (0.5, 0.5, 0.9),
                         17: (0.3, 0.4, 0.8), 25: (0.3, 0.5, 0.9)}),
    ("depress", 0.0075, {15: (1.0, 0.8, 1.0), 17: (1.0, 0.7, 1.0), 24: (0.2, 0.4, 0.8)}),
    ("press", 0.0045, {24: (1.0, 0.8, 1.0), 17: (0.7, 0.5, 1.0), 23: (0.5, 0.5, 1.0), 14: (0.25, 0.4, 0.8)}),
    ("tighten", 0.0032, {23: (1.0, 0.8, 1.0), 17: (0.5, 0.5, 1.0), 14: (0.3, 0.4, 0.8), 7: (0.3, 0.4, 0.8)}),
    ("talk", 0.0117, {25: (1.0, 0.8, 1.0), 26: (0.6, 0.5, 1.0), 10: (0.4, 0.4, 0.8)}),
    ("dimpler", 0.0160, {14: (1.0, 0.8, 1.0)}),
    ("lip_raise", 0.0180, {10: (1.0, 0.8, 1.0), 7: (0.5, 0.5, 0.9), 14: (0.35, 0.4, 0.8)}),
    ("squint", 0.0110, {7: (1.0, 0.8, 1.0), 6: (0.3, 0.4, 0.8), 4: (0.2, 0.4, 0.7)}),
    ("brows_up", 0.0036, {1: (1.0, 0.8, 1.0), 2: (1.0, 0.8, 1.0)}),
)
_EVENT_FRAMES = (16, 72)  # event duration range in frames


def _envelope(t: np.ndarray, start: float, onset: float, offset: float, end: float) -> np.ndarray:
  """Smooth onset-apex-offset curve in [0, 1]."""
  rise = np.clip((t - start) / onset, 0, 1)
  fall = np.clip((end - t) / offset, 0, 1)
  e = np.minimum(rise, fall)
  return e * e * (3 - 2 * e)


def _event_curves(rng: np.random.Generator, kind: int, t: np.ndarray, gain: float) -> np.ndarray:
  """[T,15] intensity contribution of one expression event."""
  _, _, members = _EVENTS[kind]
  dur = rng.uniform(*_EVENT_FRAMES)
  start = rng.uniform(-dur, len(t))
  onset, offset = dur * rng.uniform(0.15, 0.4), dur * rng.uniform(0.15, 0.4)
  env = _envelope(t, start, onset, offset, start + dur)
  apex = min(5.0, gain * rng.uniform(1.5, 5.0))
  out = np.zeros((len(t), len(AUS)))
  for au, (prob, lo, hi) in members.items():
    if rng.random() < prob:
      out[:, _COL[au]] = apex * rng.uniform(lo, hi) * env
  if _EVENTS[kind][0] == "talk":  # syllable rhythm on the mouth opening
    rhythm = 0.6 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(5, 10) + rng.uniform(0, 6.3))
    out[:, [_COL[25], _COL[26]]] *= rhythm[:, None]
  return out


def sample_intensity(rng: np.random.Generator, identity: Identity, num_frames: int) -> np.ndarray:
  """[T,15] AU intensities in [0,5]: max over overlapping expression events. A per-clip
  activity level makes some clips calm (long neutral stretches) and others busy."""
  t = np.arange(num_frames, dtype=np.float64)
  rates = np.array([rate for _, rate, _ in _EVENTS]) * np.array(identity.event_weights)
  span = num_frames + _EVENT_FRAMES[1]  # events may start before the clip
  out = np.zeros((num_frames, len(AUS)))
  activity = rng.gamma(2.0, 0.5)
  for _ in range(rng.poisson(activity * rates.sum() * span)):
    kind = int(rng.choice(len(_EVENTS), p=rates / rates.sum()))
    out = np.maximum(out, _event_curves(rng, kind, t, identity.expressivity))
  return np.clip(out, 0, 5).astype(_F32)


def _smooth_track(rng: np.random.Generator, t: np.ndarray, limit: float) -> np.ndarray:
  """Smooth random trajectory staying within +-limit (offset plus two slow sinusoids)."""
  centre = rng.uniform(-0.6, 0.6) * limit
  amp = rng.uniform(0, 1, 2) * (limit - abs(centre)) / 2
  freq = rng.uniform(0.004, 0.04, 2)
  phase = rng.uniform(0, 2 * np.pi, 2)
  return centre + (amp[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])).sum(0)


def sample_pose(rng: np.random.Generator, num_frames: int) -> np.ndarray:
  """[T,3] smooth (yaw, pitch, roll) in degrees within +-20, +-10, +-10."""
  t = np.arange(num_frames, dtype=np.float64)
  return np.stack([_smooth_track(rng, t, lim) for lim in (20.0, 10.0, 10.0)], 1).astype(_F32)


# --------------------------------------------------------------------------------------------
# Scene (nuisance)
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
  """Per-clip nuisance. Lengths are fractions of the image size so any resolution works."""

  light: np.ndarray          # [3] unit vector towards the light (camera frame)
  ambient: float
  diffuse: float
  gain: np.ndarray           # [3] colour temperature
  exposure: np.ndarray       # [T]
  offset: np.ndarray         # [T,2] face shift
  zoom: np.ndarray           # [T] face scale
  gaze: np.ndarray           # [T,2] in -1..1
  blink: np.ndarray          # [T] lid closure 0..1
  bg_colours: np.ndarray     # [2,3] gradient ends
  bg_angle: float
  bg_shapes: np.ndarray      # [K,8] soft ellipses/boxes: box?, cx, cy, rx, ry, r, g, b
  occluder: int              # 0 none, 1 hand, 2 bar
  occ_geom: np.ndarray       # [6] target x, y, size, angle, entry dx, dy
  occ_colour: np.ndarray     # [3]
  occ_in: np.ndarray         # [T] 0 = outside the frame, 1 = at target
  noise_std: float
  noise_offset: np.ndarray   # [T,2] texture crop offsets in 0..1


def _blinks(rng: np.random.Generator, num_frames: int) -> np.ndarray:
  """[T] eyelid closure of a few quick blinks (unlabelled nuisance, easily confused with AU7)."""
  t = np.arange(num_frames)
  closure = np.zeros(num_frames)
  for _ in range(rng.poisson(num_frames / 60)):
    centre, half = rng.uniform(0, num_frames), rng.uniform(1.2, 2.5)
    closure = np.maximum(closure, np.clip(1.3 - np.abs(t - centre) / half, 0, 1))
  return closure


def _background_shapes(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
  """[K,8] soft background blobs and boxes in colours near the base colour."""
  shapes = []
  for _ in range(rng.integers(2, 7)):
    colour = np.clip(base * rng.uniform(0.6, 1.4) + rng.normal(0, 0.08, 3), 0, 1)
    shapes.append([rng.random() < 0.5, *rng.uniform(-0.1, 1.1, 2), *rng.uniform(0.08, 0.5, 2),
                   *colour])
  return np.array(shapes, _F32)


def _occluder(rng: np.random.Generator, num_frames: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
  """Occluder kind, geometry, colour and slide-in curve (hand or bar entering the frame)."""
  if rng.random() > 0.18:
    return 0, np.zeros(6, _F32), np.zeros(3, _F32), np.zeros(num_frames, _F32)
  kind = 1 if rng.random() < 0.6 else 2
  target = rng.choice([[0.5, 0.75], [0.35, 0.42], [0.65, 0.42], [0.3, 0.65], [0.7, 0.65],
                       [0.5, 0.2]]) + rng.normal(0, 0.04, 2)
  entry = rng.normal(0, 1, 2)
  geom = np.array([*target, rng.uniform(0.16, 0.3), rng.uniform(0, np.pi),
                   *(entry / np.linalg.norm(entry))], _F32)
  colour = _skin_tone(rng) if kind == 1 else rng.uniform(0.05, 0.9, 3)
  dur = rng.uniform(0.3, 1.0) * num_frames
  start = rng.uniform(-0.3 * dur, num_frames - 0.5 * dur)
  ramp = rng.uniform(3, 8)
  presence = _envelope(np.arange(num_frames, dtype=np.float64), start, ramp, ramp, start + dur)
  return kind, geom, colour.astype(_F32), presence.astype(_F32)


def sample_scene(rng: np.random.Generator, num_frames: int, nuisance: bool = True) -> Scene:
  """Per-clip nuisance; ``nuisance=False`` gives a clean, frontally lit, still scene."""
  t = np.arange(num_frames, dtype=np.float64)
  az, el = (rng.uniform(-1.0, 1.0), rng.uniform(-0.2, 0.9)) if nuisance else (0.0, 0.3)
  light = np.array([np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)])
  warmth = rng.uniform(-1, 1) if nuisance else 0.0
  gain = np.array([1 + 0.08 * warmth, 1.0, 1 - 0.12 * warmth]) * rng.normal(1, 0.02 * nuisance, 3)
  base = rng.uniform(0.15, 0.85, 3) * rng.uniform(0.5, 1.0) if nuisance else np.full(3, 0.55)
  jitter = float(nuisance)
  shift = np.stack([_smooth_track(rng, t, 0.03) for _ in range(2)], 1)
  kind, geom, colour, presence = _occluder(rng, num_frames) if nuisance else (
      0, np.zeros(6, _F32), np.zeros(3, _F32), np.zeros(num_frames, _F32))
  return Scene(
      light=light.astype(_F32), ambient=rng.uniform(0.35, 0.6) if nuisance else 0.55,
      diffuse=rng.uniform(0.45, 0.75) if nuisance else 0.55, gain=gain.astype(_F32),
      exposure=(rng.uniform(0.8, 1.15) * (1 + 0.02 * jitter * np.sin(t * rng.uniform(0.1, 1))) if
                nuisance else np.ones(num_frames)).astype(_F32),
      offset=(jitter * shift).astype(_F32),
      zoom=(1 + jitter * (rng.uniform(-0.05, 0.05) + _smooth_track(rng, t, 0.03))).astype(_F32),
      gaze=np.stack([_smooth_track(rng, t, 0.8 * jitter + 0.01) for _ in range(2)], 1).astype(_F32),
      blink=(_blinks(rng, num_frames) * jitter).astype(_F32),
      bg_colours=np.stack([base, np.clip(base * rng.uniform(0.5, 1.5, 3), 0, 1)]).astype(_F32),
      bg_angle=rng.uniform(0, 2 * np.pi),
      bg_shapes=_background_shapes(rng, base) if nuisance else np.zeros((0, 8), _F32),
      occluder=kind, occ_geom=geom, occ_colour=colour, occ_in=presence,
      noise_std=rng.uniform(0.002, 0.016) if nuisance else 0.003,
      noise_offset=rng.uniform(0, 1, (num_frames, 2)).astype(_F32),
  )


# --------------------------------------------------------------------------------------------
# Landmarks (canonical 3-D face -> pose -> image)
# --------------------------------------------------------------------------------------------

def _activation(identity: Identity, intensity: np.ndarray) -> np.ndarray:
  """[T,15] AU activation in 0..1.2: labelled intensity plus the resting pseudo-intensity, / 5."""
  return np.clip((intensity + np.array(identity.resting_au, _F32)) / 5.0, 0, 1.2)


def _outline_field(idn: Identity, x: np.ndarray, y: np.ndarray, yp: np.ndarray | None = None) -> np.ndarray:
  """Head outline in normalised coordinates (< 1 inside): an ellipse above the centre line;
  below it a chin taper and a jaw squareness term. yp = max(y, 0) if already at hand
  (it is overwritten)."""
  yp = np.maximum(y, 0) if yp is None else yp
  xt = idn.chin_taper * yp
  xt += 1
  xt *= x
  xt *= xt
  yp *= yp
  yp *= -idn.jaw_square
  yp += 1
  xt *= yp
  xt += y * y
  return xt


@functools.lru_cache(maxsize=256)
def _contour_unit(idn: Identity) -> np.ndarray:
  """[9,2] normalised outline points from the side (point 0) to the chin (point 8), by bisection."""
  phi = np.linspace(0.0, np.pi / 2, 9)
  lo, hi = np.zeros(9), np.full(9, 2.0)
  for _ in range(40):
    mid = 0.5 * (lo + hi)
    inside = _outline_field(idn, mid * np.cos(phi), mid * np.sin(phi)) < 1
    lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
  return np.stack([lo * np.cos(phi), lo * np.sin(phi)], 1)


def _jaw_contour(identity: Identity, lower_b: np.ndarray) -> np.ndarray:
  """[T,17,2] face contour points on the rendered head outline (see ``_face_field``)."""
  unit = _contour_unit(identity)
  x = identity.face_w * unit[:, 0]
  y = _C0 + lower_b[:, None] * unit[:, 1]
  xs = np.concatenate([-x, x[7::-1]])
  ys = np.concatenate([y, y[:, 7::-1]], 1)
  return np.stack([np.broadcast_to(xs, ys.shape), ys], -1)


def _brow_points(idn: Identity, a: dict[int, np.ndarray]) -> np.ndarray:
  """[T,10,3] brows 17..26."""
  s = np.linspace(0, 1, 5)  # 0 = inner end, 1 = outer end
  w_in, w_out = (1 - s) ** 1.3, s ** 1.2 * 0.95 + 0.05
  x = idn.brow_inner + (idn.brow_outer - idn.brow_inner) * s
  x = x - (0.07 * a[4] + 0.02 * a[9] - 0.01 * a[1]) * (1 - s) ** 1.5
  arch = 4 * (0.2 + 0.75 * s) * (0.8 - 0.75 * s)
  y = (idn.brow_y - idn.brow_arch * arch - 0.14 * a[1] * w_in - 0.13 * a[2] * w_out
       + 0.09 * a[4] * (1 - 0.65 * s) + 0.04 * a[9] * w_in + 0.02 * a[6] * s)
  z = np.broadcast_to(0.52 - 0.27 * s, y.shape)
  left = np.stack([-x[:, ::-1], y[:, ::-1], z[:, ::-1]], -1)
  right = np.stack([x, y, z], -1)
  return np.concatenate([left, right], 1)


def _eye_points(idn: Identity, a: dict[int, np.ndarray], blink: np.ndarray) -> np.ndarray:
  """[T,12,3] eyes 36..47."""
  n = len(blink)
  up = idn.eye_up * np.clip(1 - 0.12 * a[4] - 0.1 * a[6] - 0.15 * a[7] - 0.1 * a[9] + 0.1 * a[2],
                            0.3, 1.2)
  down = idn.eye_down * np.clip(1 - 0.45 * a[6] - 0.75 * a[7] - 0.12 * a[12] - 0.2 * a[9], -0.2, 1)
  b = blink[:, None]
  up = up * (1 - b) - b * 0.9 * down
  half = idn.eye_w / 2
  f = np.array([1 / 3, 2 / 3])  # fraction from the outer to the inner corner
  y_line = -idn.eye_tilt + f * 1.2 * idn.eye_tilt
  pts = []
  for side in (-1.0, 1.0):
    outer, inner = side * (idn.eye_dx + half), side * (idn.eye_dx - half)
    xs = outer + f * (inner - outer)
    upper = np.stack([np.broadcast_to(xs, (n, 2)), y_line - up * np.array([0.92, 1.0]),
                      np.full((n, 2), 0.43)], -1)
    lower = np.stack([np.broadcast_to(xs, (n, 2)), y_line + down * np.array([0.95, 0.85]),
                      np.full((n, 2), 0.41)], -1)
    c_out = np.broadcast_to([outer, -idn.eye_tilt, 0.22], (n, 3))[:, None]
    c_in = np.broadcast_to([inner, 0.2 * idn.eye_tilt, 0.4], (n, 3))[:, None]
    if side < 0:  # 36 outer, 37-38 upper, 39 inner, 40-41 lower (inner -> outer)
      pts += [c_out, upper, c_in, lower[:, ::-1]]
    else:         # 42 inner, 43-44 upper, 45 outer, 46-47 lower (outer -> inner)
      pts += [c_in, upper[:, ::-1], c_out, lower]
  return np.concatenate(pts, 1)


def _nose_points(idn: Identity, a: dict[int, np.ndarray]) -> np.ndarray:
  """[T,9,3] nose 27..35."""
  n = len(a[1])
  top, tip = -0.1, idn.nose_len
  bridge_y = top + (tip - top) * np.array([0, 1 / 3, 2 / 3, 1.0]) - np.array([0, 0, 0.03, 0.02]) * a[9]
  depth = np.broadcast_to([0.42, 0.58, 0.74, 0.92], (n, 4))
  bridge = np.stack([np.zeros((n, 4)), bridge_y, depth], -1)
  lift = 0.07 * a[9] + 0.035 * a[10] + 0.01 * a[6]
  widen = 1 + 0.12 * a[9] + 0.1 * a[10] + 0.07 * a[12]
  fx = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
  base = tip + 0.07 + np.array([-0.01, 0.02, 0.035, 0.02, -0.01])
  nostrils = np.stack([idn.nose_w * fx * widen, base - lift,
                       np.broadcast_to([0.5, 0.6, 0.66, 0.6, 0.5], (n, 5))], -1)
  return np.concatenate([bridge, nostrils], 1)


def _mouth_points(idn: Identity, a: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """[T,20,3] mouth 48..67 and [T] jaw drop, from a lip seam, an opening and lip thicknesses."""
  mw = idn.mouth_w * (1 + 0.22 * a[12] - 0.12 * a[14] - 0.1 * a[23] - 0.07 * a[24] + 0.04 * a[15]
                      - 0.1 * a[26])
  corner = -0.13 * a[12] - 0.02 * a[14] + 0.11 * a[15] + 0.025 * a[17] - 0.025 * a[10] + 0.05 * a[26]
  centre = -0.03 * a[10] - 0.045 * a[17] + 0.01 * a[15]
  opening = 0.09 * a[25] + 0.24 * a[26] + 0.04 * a[12] * a[25]
  thick_u = idn.upper_lip * np.clip(1 - 0.5 * a[23] - 0.6 * a[24] + 0.3 * a[10] - 0.2 * a[12], 0.25, 2)
  thick_l = idn.lower_lip * np.clip(1 - 0.45 * a[23] - 0.55 * a[24] + 0.15 * a[17] - 0.2 * a[12],
                                    0.25, 2)

  def seam(f):
    return idn.mouth_y + centre + (corner - centre) * np.abs(f) ** 1.6

  def gap(f):
    return opening * (1 - f * f)

  fo = np.array([-1, -0.62, -0.3, 0, 0.3, 0.62, 1.0])
  prof_u = np.array([0, 0.75, 1.05, 0.92, 1.05, 0.75, 0])
  prof_l = np.array([0.72, 0.96, 1.0, 0.96, 0.72])          # 55..59 at f = .62 .. -.62
  fl = np.array([0.62, 0.3, 0, -0.3, -0.62])
  fi = np.array([-1, -0.45, 0, 0.45, 1.0]) * 0.88
  fil = np.array([0.45, 0, -0.45]) * 0.88
  xo = np.concatenate([fo * mw, fl * mw, fi * mw, fil * mw], 1)
  yo = np.concatenate([seam(fo) - 0.35 * gap(fo) - thick_u * prof_u,
                       seam(fl) + 0.65 * gap(fl) + thick_l * prof_l,
                       seam(fi) - 0.35 * gap(fi), seam(fil) + 0.65 * gap(fil)], 1)
  depth = np.array([0.45, 0.55, 0.6, 0.62, 0.6, 0.55, 0.45, 0.53, 0.57, 0.58, 0.57, 0.53,
                    0.46, 0.56, 0.58, 0.56, 0.46, 0.55, 0.56, 0.55])
  z = np.broadcast_to(depth, xo.shape) + 0.06 * a[17] * (np.arange(20) >= 7) * (np.arange(20) < 12)
  jaw_drop = (0.25 * a[26] + 0.03 * a[25])[:, 0]
  return np.stack([xo, yo, z], -1), jaw_drop


def _face_model(identity: Identity, act: np.ndarray, blink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Canonical 3-D landmarks [T,68,3] and the lower-head half height [T] (jaw drop included)
  for AU activations act [T,15]."""
  a = {au: act[:, i:i + 1] for i, au in enumerate(AUS)}
  mouth, drop = _mouth_points(identity, a)
  lower_b = identity.chin_y - _C0 + drop
  jaw = _jaw_contour(identity, lower_b)
  jaw3 = np.concatenate([jaw, np.zeros(jaw.shape[:2] + (1,))], -1)
  pts = np.concatenate([jaw3, _brow_points(identity, a), _nose_points(identity, a),
                        _eye_points(identity, a, blink), mouth], 1)
  return pts.astype(_F32), lower_b.astype(_F32)


def _rotation(pose: np.ndarray) -> np.ndarray:
  """[T,3,3] camera-from-head rotation for (yaw, pitch, roll) degrees."""
  yaw, pitch, roll = np.deg2rad(pose.astype(np.float64)).T
  one, zero = np.ones_like(yaw), np.zeros_like(yaw)
  cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
  ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
  rx = np.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).reshape(-1, 3, 3)
  rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
  return rz @ rx @ ry


@dataclasses.dataclass(frozen=True, eq=False)
class _Camera:
  """Per-frame orthographic projection: image = origin + m @ (x, y) + r * z."""

  rot: np.ndarray      # [T,3,3]
  m: np.ndarray        # [T,2,2]
  r: np.ndarray        # [T,2]
  origin: np.ndarray   # [T,2]
  scale: np.ndarray    # [T] pixels per canonical unit

  def frames(self, sl: slice) -> "_Camera":
    return _Camera(self.rot[sl], self.m[sl], self.r[sl], self.origin[sl], self.scale[sl])

  def project(self, pts: np.ndarray) -> np.ndarray:
    """Image positions [T,K,2] of canonical points [T,K,3]."""
    flat = np.einsum("tij,tkj->tki", self.m, pts[..., :2])
    return self.origin[:, None] + flat + self.r[:, None] * pts[..., 2:]


def _camera(pose: np.ndarray, scene: Scene, size: int) -> _Camera:
  """Projection for each frame: head rotation about a pivot behind the face, then the scene's
  zoom and shift of an aligned face crop."""
  rot = _rotation(pose)
  scale = _S_FRAC * size * scene.zoom.astype(np.float64)
  centre = np.array([0.5, _EYE_ROW]) * size + scene.offset * size
  origin = centre + scale[:, None] * (_PIVOT[:2] - (rot @ _PIVOT)[:, :2])
  return _Camera(rot=rot, m=scale[:, None, None] * rot[:, :2, :2], r=scale[:, None] * rot[:, :2, 2],
                 origin=origin, scale=scale)


# --------------------------------------------------------------------------------------------
# Rendering primitives. Images are planar float32 [3,T,H,W] in 0..1; per-frame parameters are
# shaped [T,1,1]; every layer works on a small contiguous copy of its bounding box (numpy is
# several times faster on contiguous arrays than on strided views).
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _textures(size: int) -> dict[str, np.ndarray]:
  """Fixed textures (2x the image size, cropped at per-clip offsets): unit white noise, hair
  strands as a gain around 1, and unit low-frequency mottle."""
  rng = _rng(size, 0x7E)
  noise = rng.standard_normal((2 * size, 2 * size)).astype(_F32)
  k = max(2, size // 10)
  strands = np.cumsum(noise, 0)
  strands = strands[k:] - strands[:-k]
  strands = np.concatenate([strands, strands[:k]], 0)
  strands = 1 + 0.12 * strands / strands.std()
  k = max(2, size // 40)
  mottle = np.cumsum(np.cumsum(noise, 0), 1)
  mottle = mottle[k:, k:] - mottle[:-k, k:] - mottle[k:, :-k] + mottle[:-k, :-k]
  mottle = np.pad(mottle, ((0, k), (0, k)), mode="wrap")
  return {"noise": noise, "strands": strands.astype(_F32),
          "mottle": (mottle / mottle.std()).astype(_F32)}


def _clamp(x: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
  """In-place clip of a temporary."""
  return np.clip(x, lo, hi, out=x)


def _inside(d: np.ndarray) -> np.ndarray:
  """Coverage of a soft edge from a signed distance in pixels (positive inside); reuses d."""
  d += 0.5
  return _clamp(d)


def _bump(x: np.ndarray) -> np.ndarray:
  """Compact smooth bump (1 - x^2)^2, zero for |x| >= 1."""
  b = x * x
  np.subtract(1, b, out=b)
  np.maximum(b, 0, out=b)
  b *= b
  return b


def _t1(x) -> np.ndarray:
  """Per-frame scalars as [T,1,1] float32."""
  return np.asarray(x, _F32).reshape(-1, 1, 1)


def _span(s: np.ndarray, length: np.ndarray) -> np.ndarray:
  """Coverage of a segment's extent 0 <= s <= 1 (fitted curves are meaningless outside)."""
  return _inside(np.minimum(s, 1 - s) * length)


def _ends(s: np.ndarray, length: np.ndarray, fade_px: float) -> np.ndarray:
  """1 along a segment, fading to 0 within fade_px pixels of both ends."""
  return _clamp(np.minimum(s, 1 - s) * (length / fade_px))


def _local(p: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(s, t) of points p [T,K,2] in the p0->p1 frame (see ``_Patch.frame``)."""
  d = p1 - p0
  length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-3)[:, None]
  e = d / length
  q = p - p0[:, None]
  s = (q[..., 0] * e[:, 0:1] + q[..., 1] * e[:, 1:2]) / length
  t = q[..., 1] * e[:, 0:1] - q[..., 0] * e[:, 1:2]
  return s, t


def _fit_curve(p: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
  """Contour t(s) = s(1-s) P(s) through the K points p [T,K,2] of the p0->p1 frame, pinned at
  both ends. P interpolates t/(s(1-s)) (Newton divided differences, expanded to monomial
  coefficients [T,K], lowest power first)."""
  s, t = _local(p, p0, p1)
  s = np.clip(s, 0.02, 0.98)
  diff = t / (s * (1 - s))
  k = s.shape[1]
  for j in range(1, k):
    diff[:, j:] = (diff[:, j:] - diff[:, j - 1:-1]) / (s[:, j:] - s[:, :-j])
  poly = np.zeros_like(diff)
  poly[:, 0] = diff[:, k - 1]
  for j in range(k - 2, -1, -1):  # poly = poly * (x - s_j) + diff_j
    poly[:, 1:] = poly[:, :-1] - s[:, j:j + 1] * poly[:, 1:]
    poly[:, 0] = diff[:, j] - s[:, j] * poly[:, 0]
  return poly.astype(_F32)


def _curve(coef: np.ndarray, s: np.ndarray) -> np.ndarray:
  """Evaluate a ``_fit_curve`` contour at s (Horner)."""
  k = coef.shape[1]
  acc = _t1(coef[:, k - 1]) * s
  for j in range(k - 2, 0, -1):
    acc += _t1(coef[:, j])
    acc *= s
  acc += _t1(coef[:, 0])
  acc *= s - s * s
  return acc


# Contours fitted through landmarks: name -> (start point, end point, interior points in order).
_CONTOURS = {
    "brow_l": (17, 21, (18, 19, 20)), "brow_r": (22, 26, (23, 24, 25)), "brows": (17, 26, (19, 21, 22, 24)),
    "eye_l_up": (36, 39, (37, 38)), "eye_l_low": (36, 39, (41, 40)),
    "eye_r_up": (42, 45, (43, 44)), "eye_r_low": (42, 45, (47, 46)),
    "lip_up": (48, 54, (49, 50, 51, 52, 53)), "lip_low": (48, 54, (59, 58, 57, 56, 55)),
    "mouth_up": (60, 64, (61, 62, 63)), "mouth_low": (60, 64, (67, 66, 65)),
}


def _fit_contours(lm: np.ndarray) -> dict[str, np.ndarray]:
  """``_fit_curve`` of every contour for every frame, batched by the number of points."""
  out = {}
  num = len(lm)
  for k in sorted({len(c[2]) for c in _CONTOURS.values()}):
    names = [n for n, c in _CONTOURS.items() if len(c[2]) == k]
    p = np.concatenate([lm[:, list(_CONTOURS[n][2])] for n in names])
    p0 = np.concatenate([lm[:, _CONTOURS[n][0]] for n in names])
    p1 = np.concatenate([lm[:, _CONTOURS[n][1]] for n in names])
    coef = _fit_curve(p, p0, p1)
    out.update({n: coef[i * num:(i + 1) * num] for i, n in enumerate(names)})
  return out


def _blob(patch: "_Patch", c: np.ndarray, radius: float) -> np.ndarray:
  """Round smooth bump (1 - d^2)^2 of the given radius around per-frame points c [T,2]."""
  dx = (patch.X - _t1(c[:, 0])) * (1 / radius)
  dy = (patch.Y - _t1(c[:, 1])) * (1 / radius)
  b = dx * dx + dy * dy
  np.subtract(1, b, out=b)
  np.maximum(b, 0, out=b)
  b *= b
  return b


class _Patch:
  """Image box covering points pts [T,K,2] (+ margin) in every frame of the chunk.

  Use as a context manager: painting happens on a contiguous copy written back on exit.
  """

  def __init__(self, img: np.ndarray, pts: np.ndarray, margin: float, gain: np.ndarray):
    size_h, size_w = img.shape[2:]
    flat = pts.reshape(-1, 2)
    lo = np.floor(flat.min(0) - margin).astype(int)
    hi = np.ceil(flat.max(0) + margin).astype(int) + 1
    self.x0, self.y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    self.x1, self.y1 = min(int(hi[0]), size_w), min(int(hi[1]), size_h)
    self.empty = self.x1 <= self.x0 or self.y1 <= self.y0
    self.X = np.arange(self.x0, self.x1, dtype=_F32)[None, None, :]
    self.Y = np.arange(self.y0, self.y1, dtype=_F32)[None, :, None]
    self._img = img
    self.gain = gain
    self.view = None

  def region(self) -> np.ndarray:
    return self._img[:, :, self.y0:self.y1, self.x0:self.x1]

  def __enter__(self) -> "_Patch":
    if not self.empty:
      self.view = np.ascontiguousarray(self.region())
    return self

  def __exit__(self, *exc) -> None:
    if not self.empty:
      self.region()[...] = self.view

  def frame(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local coordinates along p0->p1 [T,2]: s (0 at p0, 1 at p1), t in pixels across
    (positive = clockwise-right of the direction, i.e. below a left-to-right segment), length."""
    d = p1 - p0
    length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-3)
    ex, ey = d[:, 0] / length, d[:, 1] / length
    c = np.stack([ex / length, ey / length, ex, ey, p0[:, 0], p0[:, 1], length]).astype(_F32)[..., None, None]
    dx, dy = self.X - c[4], self.Y - c[5]
    s = dx * c[0]
    s = s + dy * c[1]
    t = dy * c[2]
    t = t - dx * c[3]
    return s, t, c[6]

  def blend(self, alpha: np.ndarray, rgb, shade: np.ndarray | None = None, rows: slice = slice(None)) -> None:
    """Paint colour rgb * shade with coverage alpha (on a band of rows); rgb is [3] or per
    frame [T,3]. The camera's colour gain is applied here, so no separate gain pass."""
    rgb = np.asarray(rgb, _F32) * self.gain
    keep = 1 - alpha
    weight = alpha if shade is None else alpha * shade
    weight = np.broadcast_to(weight, keep.shape)
    buf = np.empty(keep.shape, _F32)
    for c in range(3):
      channel = self.view[c][:, rows]
      channel *= keep
      channel += np.multiply(weight, _t1(rgb[:, c]), out=buf)

  def scale(self, factor: np.ndarray) -> None:
    self.view *= factor


# --------------------------------------------------------------------------------------------
# Renderer
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class _Ctx:
  """Everything the layer painters of one chunk of frames need."""

  idn: Identity
  scene: Scene
  frames: slice
  img: np.ndarray          # [3,T,H,W]
  gain: np.ndarray         # [T,3] colour temperature x exposure x 255
  lm: np.ndarray           # [T,68,2] image landmarks
  contours: dict[str, np.ndarray]  # ``_fit_contours`` of lm
  shade: np.ndarray        # [T,68] skin shading at the landmarks
  cam: _Camera
  lower_b: np.ndarray      # [T] lower head half-height (jaw drop included)
  act: np.ndarray          # [T,15] AU activations 0..1.2
  act_t: np.ndarray        # [15,T,1,1] the same, per AU as per-frame parameters
  px: float                # pixels per canonical unit (chunk mean)
  light: np.ndarray        # [T,3] light direction in head coordinates

  def a(self, au: int) -> np.ndarray:
    """[T,1,1] activation of one AU."""
    return self.act_t[_COL[au]]

  def lerp(self, i: int, j: int, f: float) -> np.ndarray:
    return self.lm[:, i] + f * (self.lm[:, j] - self.lm[:, i])

  def up(self) -> np.ndarray:
    """[T,2] image direction of the face's 'up' (rolls with the head)."""
    return -self.cam.m[:, :, 1] / self.cam.scale[:, None]

  def right(self) -> np.ndarray:
    return self.cam.m[:, :, 0] / self.cam.scale[:, None]

  def shade_at(self, i: int) -> np.ndarray:
    """[T,1,1] skin shading at landmark i."""
    return _t1(self.shade[:, i])

  def patch(self, pts: np.ndarray, margin: float) -> _Patch:
    return _Patch(self.img, pts, margin, self.gain)

  def crop(self, name: str, patch: _Patch) -> np.ndarray:
    """Texture crop aligned with the patch, at this clip's texture offset."""
    tex = _textures(self.img.shape[-1])[name]
    oy, ox = (self.scene.noise_offset[0] * (tex.shape[0] // 2)).astype(int)
    return tex[oy + patch.y0: oy + patch.y1, ox + patch.x0: ox + patch.x1]


def _background(scene: Scene, size: int) -> np.ndarray:
  """[3,H,W] colour gradient plus soft blobs and boxes."""
  g = np.arange(size, dtype=_F32) / size
  ca, sa = np.cos(scene.bg_angle), np.sin(scene.bg_angle)
  ramp = np.clip((g[None, :] - 0.5) * ca + (g[:, None] - 0.5) * sa + 0.5, 0, 1)
  c0, c1 = scene.bg_colours
  bg = c0[:, None, None] + (c1 - c0)[:, None, None] * ramp
  for box, cx, cy, rx, ry, *rgb in scene.bg_shapes:
    xs = slice(max(int((cx - rx) * size), 0), max(int((cx + rx) * size) + 2, 0))
    ys = slice(max(int((cy - ry) * size), 0), max(int((cy + ry) * size) + 2, 0))
    dx, dy = np.abs(g[None, xs] - cx) / rx, np.abs(g[ys, None] - cy) / ry
    dist = np.maximum(dx, dy) if box else np.sqrt(dx * dx + dy * dy)
    alpha = np.clip((1 - dist) * (size * min(rx, ry) / (1.5 if box else 6)), 0, 1)
    region = bg[:, ys, xs]
    region += alpha * (np.asarray(rgb, _F32)[:, None, None] - region)
  return bg.astype(_F32)


def _plane_coords(ctx: _Ctx, patch: _Patch) -> tuple[np.ndarray, np.ndarray]:
  """Canonical (u, v) of each pixel on the head plane z = 0 (inverse of the projection)."""
  inv = np.linalg.inv(ctx.cam.m)
  o = ctx.cam.origin
  coords = []
  for row in (0, 1):
    a, b = inv[:, row, 0], inv[:, row, 1]
    coords.append(_t1(a) * patch.X + (_t1(b) * patch.Y - _t1(a * o[:, 0] + b * o[:, 1])))
  return coords[0], coords[1]


def _lambert(light: np.ndarray, scene: Scene, nx: np.ndarray, ny: np.ndarray, nz: np.ndarray,
             flatten: float = 1.0) -> np.ndarray:
  """Ambient + diffuse shading for head-frame normals [T,...] (unnormalised is fine) under
  per-frame light directions [T,3]; flatten < 1 damps the x/y components (a flatter surface
  than the outline suggests)."""
  coef = (light * (scene.diffuse * np.array([flatten, flatten, 1.0]))).astype(_F32)
  coef = coef.reshape(coef.shape + (1,) * (nx.ndim - 1))
  lam = coef[:, 0] * nx
  lam += coef[:, 1] * ny
  lam += coef[:, 2] * nz
  np.maximum(lam, 0, out=lam)
  lam += scene.ambient
  return lam


def _landmark_shade(idn: Identity, canon: np.ndarray, lower_b: np.ndarray, light: np.ndarray,
                    scene: Scene) -> np.ndarray:
  """[T,68] skin shading at the landmarks, for features painted in their own colours."""
  x = canon[..., 0] / idn.face_w
  dy = canon[..., 1] - _C0
  y = dy / np.where(dy < 0, idn.head_top, lower_b[:, None])
  nz = np.sqrt(np.clip(1 - _outline_field(idn, x, y), 0, 1))
  return _lambert(light, scene, x, y, nz, flatten=0.8).astype(_F32)


def _canon_patch(ctx: _Ctx, xs: tuple[float, float], ys: tuple[float, float], margin: float = 2.0) -> _Patch:
  """Patch covering a canonical head-plane rectangle in every frame of the chunk."""
  corners = np.array([[x, y, 0.0] for x in xs for y in ys], _F32)
  return ctx.patch(ctx.cam.project(np.broadcast_to(corners, (len(ctx.lm), 4, 3))), margin)


def _neck_alpha(ctx: _Ctx, patch: _Patch, top: float = 0.6, rows: slice = slice(None)) -> np.ndarray:
  """Neck coverage (on a band of the patch's rows): a vertical band below the head that
  follows the face translation only."""
  s, ox, oy = _t1(ctx.cam.scale), _t1(ctx.cam.origin[:, 0]), _t1(ctx.cam.origin[:, 1])
  across = _inside((ctx.idn.neck_w - np.abs((patch.X - ox) / s)) * s)
  return across * _inside((patch.Y[:, rows] - oy) - top * s)


def _paint_body(ctx: _Ctx) -> None:
  """Neck and shoulders (they follow the face translation, not its rotation)."""
  idn, size = ctx.idn, ctx.img.shape[-1]
  scale, origin = ctx.cam.scale, ctx.cam.origin
  s, ox, oy = _t1(scale), _t1(origin[:, 0]), _t1(origin[:, 1])
  light = ctx.scene.ambient + 0.5 * ctx.scene.diffuse
  for top, half in ((0.6, idn.neck_w), (1.75, 10.0)):
    pts = np.stack([origin + scale[:, None] * np.array([-half, top]), origin + scale[:, None] * half], 1)
    pts[:, 1, 1] = size + 1.0
    with ctx.patch(pts, 2) as patch:
      if patch.empty:
        continue
      bu, bv = (patch.X - ox) / s, (patch.Y - oy) / s
      if top < 1:  # neck, darker under the chin
        patch.blend(_neck_alpha(ctx, patch, top), idn.skin,
                    _clamp(0.45 + 0.35 * (bv - 1.0), 0.45, 0.8) * light)
      else:        # shoulders / clothes
        alpha = _inside((bv - top - 0.25 * np.maximum(np.abs(bu) - 0.3, 0)) * s)
        patch.blend(alpha, idn.cloth, (0.5 + 0.4 * _clamp(1.2 - np.abs(bu) * 0.5)) * light)


def _hair_shape(idn: Identity) -> tuple[float, float, float, float]:
  """Hair outline: half width, centre y, height above the centre, and top y."""
  half_w = idn.face_w * (1.03 + idn.hair_volume)
  centre = _C0 - 0.05
  height = idn.head_top + idn.hair_volume * 1.2 - 0.05
  return half_w, centre, height, centre - height


@dataclasses.dataclass(eq=False)
class _Head:
  """Per-pixel head geometry over the head box, kept for the hair-front pass."""

  patch: _Patch
  u: np.ndarray
  v: np.ndarray
  hair_alpha: np.ndarray
  hair_shade: np.ndarray


def _hair_field(ctx: _Ctx, patch: _Patch, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Hair coverage and shading: ellipse on top, straight fall to ``hair_len``; linear light
  and vertical strands."""
  idn = ctx.idn
  half_w, centre, height, _ = _hair_shape(idn)
  tail = 0.35
  x = u * (1 / half_w)
  y = np.minimum(v - centre, 0)
  y *= 1 / height
  y += np.maximum(v - (idn.hair_len - tail), 0) * (1 / tail)
  field = x * x
  field += y * y
  edge = 0.5 * ctx.px * half_w
  alpha = _clamp(field * -edge + (edge + 0.5))
  light, amb, dif = ctx.light, ctx.scene.ambient, ctx.scene.diffuse
  shade = _t1(0.5 * dif * light[:, 0]) * x
  shade += _t1(0.5 * dif * light[:, 1]) * y
  shade += _t1(amb + 0.7 * dif * np.maximum(light[:, 2], 0))
  shade *= ctx.crop("strands", patch)
  return alpha, shade


def _face_field(ctx: _Ctx, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Head outline field (< 1 inside, = 1 through the jaw landmarks), normalised x and y."""
  idn = ctx.idn
  x = u * (1 / idn.face_w)
  dv = v - _C0
  y = np.minimum(dv, 0)
  y *= 1 / idn.head_top
  yp = np.maximum(dv, 0, out=dv)
  yp *= _t1(1 / ctx.lower_b)
  y += yp
  return _outline_field(idn, x, y, yp), x, y


def _hair_behind_neck(ctx: _Ctx, patch: _Patch, hair_alpha: np.ndarray) -> np.ndarray:
  """Hair coverage with the (already painted) neck cut out, so long hair falls behind it."""
  neck_top = int(ctx.cam.origin[:, 1].min() + 0.6 * ctx.cam.scale.min()) - patch.y0
  if ctx.idn.hair_len <= _C0 + 0.5 or neck_top >= patch.y1 - patch.y0:
    return hair_alpha
  behind = hair_alpha.copy()
  rows = slice(max(neck_top, 0), None)
  behind[:, rows] *= 1 - _neck_alpha(ctx, patch, rows=rows)
  return behind


def _skin(ctx: _Ctx, patch: _Patch, u: np.ndarray, v: np.ndarray, rows: slice) -> tuple[np.ndarray, np.ndarray]:
  """Face coverage and skin shading (Lambert on the head ellipsoid, optional stubble) on a band
  of the head box's rows."""
  idn = ctx.idn
  field, x, y = _face_field(ctx, u, v)
  edge = 0.5 * ctx.px * idn.face_w
  alpha = _clamp(field * -edge + (edge + 0.5))
  nz = np.sqrt(_clamp(np.subtract(1, field, out=field)), out=field)
  shade = _lambert(ctx.light, ctx.scene, x, y, nz, flatten=0.8)
  if idn.stubble > 0:  # beard shadow below the nose, mottled
    beard = _clamp((v - (idn.nose_len + 0.12)) * 6)
    beard *= idn.stubble * (0.8 + 0.2 * ctx.crop("noise", patch)[rows])
    shade *= 1 - beard
  return alpha, shade


def _paint_head(ctx: _Ctx) -> _Head:
  """Hair volume, then the skin, in one pass over the head box (shared pixel coordinates); the
  skin only on the rows the face can show on (above its hairline the hair covers it)."""
  idn = ctx.idn
  half_w, _, _, top = _hair_shape(idn)
  chin = _C0 + float(ctx.lower_b.max())
  face_top = _C0 - idn.head_top if idn.hair_style == _BUZZ else max(_C0 - idn.head_top, idn.hairline - 0.15)
  face_box = _canon_patch(ctx, (-idn.face_w, idn.face_w), (face_top, chin))
  with _canon_patch(ctx, (-half_w, half_w), (top, max(idn.hair_len, chin))) as patch:
    u, v = _plane_coords(ctx, patch)
    hair_alpha, hair_shade = _hair_field(ctx, patch, u, v)
    if idn.hair_style != _BUZZ:
      patch.blend(_hair_behind_neck(ctx, patch, hair_alpha), idn.hair, hair_shade)
    rows = slice(max(face_box.y0 - patch.y0, 0), max(min(face_box.y1, patch.y1) - patch.y0, 0))
    alpha, shade = _skin(ctx, patch, u[:, rows], v[:, rows], rows)
    patch.blend(alpha, idn.skin, shade, rows)
  return _Head(patch, u, v, hair_alpha, hair_shade)


def _paint_hair_front(ctx: _Ctx, head: _Head) -> None:
  """Hair in front of the face: above the hairline, plus temple curtains for longer styles."""
  idn = ctx.idn
  half_w, _, _, top = _hair_shape(idn)
  drop = {_SHORT: 0.3, _MEDIUM: 0.9, _LONG: 1.0, _BUZZ: 0.2, _VOLUME: 0.6}[idn.hair_style]
  lowest = min(idn.hairline + 0.3 * half_w * (half_w + abs(idn.hair_part)) + drop, idn.hair_len)
  box = head.patch
  y1 = min(_canon_patch(ctx, (-half_w, half_w), (top, lowest)).y1, box.y1)
  if box.empty or y1 <= box.y0:
    return
  n = y1 - box.y0
  u, v = head.u[:, :n], head.v[:, :n]
  side = _clamp(np.abs(u) * (1 / idn.face_w) - 0.72, 0, 0.28) * (drop / 0.28)
  line = idn.hairline + 0.3 * u * u
  line += idn.hair_part * 0.3 * u
  line += side
  line -= v
  line += 0.125 * ctx.crop("strands", box)[:n]
  line -= 0.125
  alpha = _inside(line * (0.7 * ctx.px))
  alpha *= head.hair_alpha[:, :n]
  with ctx.patch(np.array([[[box.x0, box.y0], [box.x1 - 1, y1 - 1]]], _F32), 0) as patch:
    patch.blend(alpha * (0.6 if idn.hair_style == _BUZZ else 1.0), idn.hair, head.hair_shade[:, :n])


def _paint_ears(ctx: _Ctx) -> None:
  """Ears on a plane behind the face: under yaw the near ear shows more, the far one hides.
  Hair reaching below them hides them completely, so they are skipped then."""
  idn = ctx.idn
  if idn.hair_style != _BUZZ and idn.hair_len > 0.6:
    return
  up = ctx.up()
  half_h = 0.27 * idn.ear_size * ctx.px
  for side in (-1.0, 1.0):
    centre = np.broadcast_to(np.array([side * idn.face_w * 0.97, 0.22, -0.3], _F32), (len(ctx.lm), 1, 3))
    c = ctx.cam.project(centre)[:, 0]
    turn = np.clip(-side * ctx.cam.rot[:, 0, 2], 0, 1)
    half_w = _t1(0.1 * idn.ear_size * ctx.px * (0.7 + 1.6 * turn))
    with ctx.patch(c[:, None], half_h + 2) as patch:
      if patch.empty:
        continue
      s, t, _ = patch.frame(c - up * half_h, c + up * half_h)
      r = (s - 0.5) * 2
      w = t / half_w
      d2 = r * r + w * w
      shade = (ctx.scene.ambient + 0.45 * ctx.scene.diffuse) * (1 - 0.35 * _bump((d2 - 0.25) * 3))
      alpha = _inside((1 - d2) * (0.5 * half_w))
      patch.blend(alpha, np.array(idn.skin) * [0.95, 0.86, 0.84], shade)


def _paint_brow(ctx: _Ctx, contour: str, inner_last: bool) -> None:
  """Tapered brow band hanging below its landmarks (iBUG marks the upper brow edge)."""
  lm = ctx.lm
  start, end, interior = _CONTOURS[contour]
  ids = (start, *interior, end)
  thick = ctx.idn.brow_thick * ctx.px
  with ctx.patch(lm[:, list(ids)], 1.2 * thick + 1) as patch:
    if patch.empty:
      return
    p0, p1 = lm[:, ids[0]], lm[:, ids[-1]]
    s, t, length = patch.frame(p0, p1)
    t -= _curve(ctx.contours[contour], s)
    inner = s if inner_last else 1 - s
    half = thick * (0.36 + 0.3 * inner)
    t -= 0.8 * half
    dist = half - np.abs(t)
    taper = _clamp(np.minimum(inner * (length / (0.6 * thick)), (1 - inner) * (length / (0.25 * thick))))
    alpha = _inside(dist * 1.2)
    alpha *= taper
    alpha *= 0.85 + 0.08 * ctx.crop("noise", patch)
    patch.blend(alpha, ctx.idn.brow, np.broadcast_to(ctx.shade_at(ids[2]), alpha.shape))


def _eye_factor(ctx: _Ctx, s, t, top, bottom, height, ends, w: float) -> np.ndarray:
  """Multiplicative skin shading around an eye: socket shadow, lid crease, lower-lid line and
  the infra-orbital furrow that AU6/AU7 deepen (``ends`` fades the lines at the corners)."""
  mid = s - s * s
  socket = _bump((s - 0.5) * 1.1) * _bump((t + 0.5 * height) * (1 / (1.1 * height)))
  lines = (0.1 + 0.3 * ctx.a(6) + 0.2 * ctx.a(7)) * _bump((t - bottom - 0.9 * height * (0.3 + mid))
                                                          * (1 / (0.25 * height)))
  lines += 0.25 * _bump((t - top + 1.1 * height * (0.25 + mid)) * (1 / (1.2 * w)))
  lines += 0.18 * _bump((t - bottom - 0.5 * w) * (1 / w))
  lines *= ends
  factor = 1 - 0.22 * socket
  factor -= lines
  return factor


def _paint_eye(ctx: _Ctx, eye: str, outer_p0: bool) -> None:
  """Eye opening (sclera, iris with pupil) between the lid contours, then lash line, glint and
  the surrounding skin shading."""
  lm, idn = ctx.lm, ctx.idn
  p0i, p1i, upper = _CONTOURS[eye + "_up"]
  p0, p1 = lm[:, p0i], lm[:, p1i]
  height_px = max(idn.eye_up + idn.eye_down, 0.05) * ctx.px
  reach = np.concatenate([lm[:, p0i:p0i + 6], (lm[:, [p0i, p1i]] + 1.7 * height_px * ctx.up()[:, None])], 1)
  with ctx.patch(reach, 0.1 * ctx.px + 1) as patch:
    if patch.empty:
      return
    s, t, length = patch.frame(p0, p1)
    cu, cl = ctx.contours[eye + "_up"], ctx.contours[eye + "_low"]
    top, bottom = _curve(cu, s), _curve(cl, s)
    height = _t1(height_px)
    light = ctx.shade_at(upper[0])
    aperture = _inside(np.minimum(t - top, bottom - t) * 1.3)
    aperture *= _span(s, length)
    mid = s - s * s
    sclera = _clamp((t - top) * (1 / (0.5 * height)))
    sclera *= 0.4
    sclera += 0.6
    sclera *= (0.6 + 1.4 * mid) * light
    patch.blend(aperture, (0.95, 0.93, 0.9), sclera)
    gaze = ctx.scene.gaze[ctx.frames]
    half = _t1(0.5)
    sc = half + _t1(0.13 * gaze[:, 0])
    tc = 0.55 * _curve(cu, half) + 0.45 * _curve(cl, half) + _t1(0.15 * gaze[:, 1]) * height
    radius = 0.21 * length
    ds, dt = (s - sc) * length, t - tc
    r2 = (ds * ds + dt * dt) * (1 / (radius * radius))
    iris = _inside((1 - r2) * (0.5 * radius))
    iris *= aperture
    pupil = _inside((0.16 - r2) * (1.2 * radius))
    patch.blend(iris, idn.iris, (1 - 0.55 * r2) * (1 - pupil) * light)
    ds += 0.35 * radius
    dt += 0.35 * radius
    glint = _inside((0.06 - (ds * ds + dt * dt) * (1 / (radius * radius))) * (2 * radius))
    w = max(0.8, 0.03 * ctx.px)
    outer = (1 - s) if outer_p0 else s
    ends = _ends(s, length, 2)
    factor = _eye_factor(ctx, s, t, top, bottom, height, ends, w)
    factor -= 0.9 * _bump((t - top + 0.2 * w) / (w * (1 + 0.5 * outer))) * ends
    factor += 2.5 * glint * aperture
    patch.scale(factor)


def _paint_crow(ctx: _Ctx, inner_i: int, outer_i: int) -> None:
  """Crow's feet: a fan of short creases beyond the outer eye corner (AU6)."""
  k = 0.6 * ctx.a(6) + 0.15 * ctx.a(7) + ctx.idn.crow_lines
  if float(k.max()) < 0.03:
    return
  inner, outer = ctx.lm[:, inner_i], ctx.lm[:, outer_i]
  with ctx.patch(np.stack([outer, outer + 0.75 * (outer - inner)], 1), 0.2 * ctx.px + 1) as patch:
    if patch.empty:
      return
    s, t, length = patch.frame(inner, outer)
    p = (s - 1) * length
    ratio = t / (p + 0.3 * length)
    fan = sum(_bump((ratio - slope) * (1 / 0.13)) for slope in (-0.45, 0.05, 0.5))
    fan *= _bump((p - 0.42 * length) / (0.33 * length))
    patch.scale(1 - 0.5 * k * fan)


def _nose_factor(ctx: _Ctx, patch: _Patch) -> np.ndarray:
  """Multiplicative nose shading: light-dependent side shadows, alar creases, bridge and tip
  highlights, shadow under the nose and AU9 wrinkles across the bridge."""
  lm, px = ctx.lm, ctx.px
  up, right = ctx.up(), ctx.right()
  lx = float(ctx.scene.light[0])
  factor = 1 + 0.14 * _blob(patch, lm[:, 30] + up * 0.04 * px, 0.09 * px)
  factor -= 0.14 * _blob(patch, lm[:, 33] - up * 0.05 * px, ctx.idn.nose_w * px)
  for side, eye_i, ala_i in ((-1, 39, 31), (1, 42, 35)):
    s, t, length = patch.frame(ctx.lerp(27, eye_i, 0.4), lm[:, ala_i] + up * 0.12 * px)
    dark = 0.06 + 0.22 * np.clip(-side * lx, 0, 1)
    factor -= dark * (0.3 + s) * _bump(t * (1 / (0.1 * px))) * _ends(s, length, 0.2 * px)
    factor -= 0.13 * _blob(patch, lm[:, ala_i] + (up * 0.06 + side * right * 0.01) * px, 0.1 * px)
  s, t, length = patch.frame(lm[:, 27], lm[:, 30])
  factor += 0.08 * _bump(t * (1 / (0.035 * px))) * _ends(s, length, 0.15 * px)
  a9 = ctx.a(9)
  if float(a9.max()) > 0.02:
    waves = _clamp(np.cos(s * length * (2 * np.pi / (0.075 * px))) * 1.8 - 0.8)
    factor -= 0.55 * a9 * waves * _bump(t * (1 / (0.17 * px))) * _bump((s - 0.3) * 4)
  return factor


def _paint_nose(ctx: _Ctx) -> None:
  """Nose shading and the two nostrils (dark ellipses just above the nostril landmarks)."""
  lm, px = ctx.lm, ctx.px
  with ctx.patch(lm[:, 27:36], 0.22 * px) as patch:
    if patch.empty:
      return
    factor = _nose_factor(ctx, patch)
    for i, j in ((31, 32), (34, 35)):
      s, t, _ = patch.frame(lm[:, i], lm[:, j])
      ds = (s - 0.55) * 2
      dt = (t + 0.025 * px) * (1 / (0.026 * px))
      factor -= 0.65 * _inside((1 - ds * ds - dt * dt) * (0.025 * px))
    patch.scale(np.maximum(factor, 0.05, out=factor))


def _lip_tone(ctx: _Ctx) -> np.ndarray:
  """[T,3] lip colour, paler when pressed/tightened (AU24, AU23)."""
  pale = 0.5 * ctx.act[:, _COL[24]] + 0.15 * ctx.act[:, _COL[23]]
  lip, skin = np.array(ctx.idn.lip), np.array(ctx.idn.skin)
  return lip + pale[:, None] * (skin - lip)


def _paint_mouth(ctx: _Ctx) -> None:
  """Lips between the outer and inner contours; when parted a dark interior with teeth; then
  lip seam, corner and under-lip shading."""
  lm, px = ctx.lm, ctx.px
  with ctx.patch(lm[:, 48:68], 0.12 * px) as patch:
    if patch.empty:
      return
    so, to, lo = patch.frame(lm[:, 48], lm[:, 54])
    top_o, bot_o = _curve(ctx.contours["lip_up"], so), _curve(ctx.contours["lip_low"], so)
    si, ti, li = patch.frame(lm[:, 60], lm[:, 64])
    top_i, bot_i = _curve(ctx.contours["mouth_up"], si), _curve(ctx.contours["mouth_low"], si)
    seam = 0.5 * (top_i + bot_i)
    light = ctx.shade_at(51)
    lips = _inside(np.minimum(to - top_o, bot_o - to) * 0.8)
    lips *= _span(so, lo)
    below = _clamp(ti - seam + 0.5)
    tone = 0.78 + 0.25 * below
    highlight = _bump((ti - seam - 0.45 * (bot_o - seam)) * (1 / (0.04 * px))) * _bump((si - 0.5) * (1 / 0.3))
    tone += 0.25 * below * highlight
    patch.blend(lips, _lip_tone(ctx), tone * light)
    if float((lm[:, 66, 1] - lm[:, 62, 1]).max()) > 0.05:
      _paint_mouth_interior(patch, si, ti, li, top_i, bot_i, px, light)
    w = max(0.7, 0.022 * px)
    factor = 1 - 0.55 * _bump((ti - seam) * (1 / w)) * _clamp(np.minimum(si + 0.06, 1.06 - si) * 12)
    factor -= 0.18 * _bump((to - bot_o - 0.04 * px) * (1 / (0.05 * px))) * _bump((so - 0.5) * (1 / 0.55))
    factor -= 0.2 * _blob(patch, lm[:, 48], 0.035 * px) + 0.2 * _blob(patch, lm[:, 54], 0.035 * px)
    patch.scale(factor)


def _paint_mouth_interior(patch: _Patch, si, ti, li, top_i, bot_i, px: float, light: np.ndarray) -> None:
  """Dark mouth cavity, upper teeth under the upper lip, lower teeth above the lower lip."""
  opening = _inside(np.minimum(ti - top_i, bot_i - ti))
  opening *= _clamp(bot_i - top_i)  # a gap thinner than a pixel covers only part of it
  opening *= _span(si, li)
  depth = _clamp((ti - top_i) * (1 / (0.3 * px)))
  patch.blend(opening, (0.2, 0.06, 0.07), (1 - 0.6 * depth) * light)
  teeth = _inside(top_i + 0.07 * px - ti) + 0.8 * _inside(ti - bot_i + 0.04 * px)
  teeth *= _ends(si, li, 0.12 * float(li.mean()))
  teeth *= opening
  patch.blend(teeth, (0.92, 0.9, 0.84), (0.55 + 1.6 * (si - si * si)) * light)


def _paint_folds(ctx: _Ctx) -> None:
  """Nasolabial folds (deepened by AU10/AU12/AU6/AU9) with the cheek bulging beside them."""
  lm, px = ctx.lm, ctx.px
  up, right = ctx.up(), ctx.right()
  k_fold = np.clip(ctx.idn.nasolabial + 0.3 * ctx.a(10) + 0.45 * ctx.a(12) + 0.12 * ctx.a(6)
                   + 0.12 * ctx.a(9), 0, 0.75)
  for side, ala, corner in ((-1, 31, 48), (1, 35, 54)):
    start = lm[:, ala] + (side * 0.06 * right + 0.03 * up) * px
    end = lm[:, corner] + (side * 0.07 * right - 0.09 * up) * px
    with ctx.patch(np.stack([start, end], 1), 0.25 * px) as patch:
      if patch.empty:
        continue
      s, t, length = patch.frame(start, end)
      t += side * (0.05 * px) * (1 + ctx.a(12)) * 4 * (s - s * s)
      w = 0.035 * px * (1 + 0.6 * ctx.a(12))
      ends = _ends(s, length, 0.3 * float(length.mean()))
      fold = _bump(t / w)
      t += side * 2.2 * w
      fold -= 0.35 * _bump(t / (1.8 * w))
      fold *= ends
      patch.scale(1 - k_fold * fold)


def _paint_cheeks(ctx: _Ctx) -> None:
  """Cheek apples: highlight that rises and brightens with AU6 (and AU12)."""
  lm, px = ctx.lm, ctx.px
  up = ctx.up()
  rise = 0.42 - 0.1 * ctx.act[:, [_COL[6]]] - 0.05 * ctx.act[:, [_COL[12]]]
  gain = 0.03 + 0.1 * ctx.a(6) + 0.05 * ctx.a(12)
  for eye_o, eye_i in ((36, 39), (45, 42)):
    apple = 0.5 * (lm[:, eye_o] + lm[:, eye_i]) - up * rise * px
    with ctx.patch(apple[:, None], 0.24 * px) as patch:
      if not patch.empty:
        patch.scale(1 + gain * _blob(patch, apple, 0.24 * px))


def _paint_corner_marks(ctx: _Ctx) -> None:
  """AU14 dimples beside the mouth corners and AU15 depressor lines below them."""
  lm, px = ctx.lm, ctx.px
  up, right = ctx.up(), ctx.right()
  k14, k15 = 0.8 * ctx.a(14), 0.35 * ctx.a(15)
  if float(np.maximum(k14, k15).max()) < 0.02:
    return
  for side, corner in ((-1, 48), (1, 54)):
    c = lm[:, corner] + side * right * 0.06 * px
    with ctx.patch(np.stack([c + up * 0.1 * px, c - up * 0.3 * px], 1), 0.12 * px) as patch:
      if patch.empty:
        continue
      s, t, _ = patch.frame(c + up * 0.06 * px, c - up * 0.06 * px)
      marks = k14 * _bump(t * (1 / (0.028 * px))) * _bump((s - 0.5) * (1 / 0.6))
      s, t, _ = patch.frame(c, c - up * 0.26 * px + side * right * 0.05 * px)
      marks += k15 * _bump(t * (1 / (0.03 * px))) * _bump((s - 0.5) * 2)
      patch.scale(1 - marks)


def _paint_forehead(ctx: _Ctx) -> None:
  """Horizontal forehead lines following the brows: centre for AU1, sides for AU2."""
  lm, px = ctx.lm, ctx.px
  k1, k2, base = 0.7 * ctx.a(1), 0.7 * ctx.a(2), ctx.idn.forehead_lines
  if float(np.maximum(k1, k2).max()) + base < 0.03:
    return
  brows = lm[:, 17:27]
  with ctx.patch(np.concatenate([brows, brows + ctx.up()[:, None] * 0.55 * px], 1), 2) as patch:
    if patch.empty:
      return
    p0, p1 = lm[:, 17], lm[:, 26]
    s, t, _ = patch.frame(p0, p1)
    height = _curve(ctx.contours["brows"], s)
    height -= t
    lines = np.cos((height - 0.16 * px) * (2 * np.pi / (0.085 * px)))
    lines = _clamp(lines * 2 - 1)
    lines *= _bump((height - 0.24 * px) * (1 / (0.17 * px)))
    weight = k1 * _bump((s - 0.5) * (1 / 0.28))
    weight += k2 * (_bump((s - 0.16) * (1 / 0.22)) + _bump((s - 0.84) * (1 / 0.22)))
    weight += base * _bump((s - 0.5) * 2)
    lines *= weight
    patch.scale(1 - 0.45 * lines)


def _paint_glabella(ctx: _Ctx) -> None:
  """Vertical furrows between the inner brows (AU4)."""
  lm, px = ctx.lm, ctx.px
  k = 0.6 * ctx.a(4) + ctx.idn.glabella_lines + 0.15 * ctx.a(9)
  if float(k.max()) < 0.03:
    return
  a, b = lm[:, 21], lm[:, 22]
  down = -ctx.up() * 0.15 * px
  with ctx.patch(np.stack([a, b, a - down, b + down], 1), 2) as patch:
    if patch.empty:
      return
    s, t, length = patch.frame(a, b)
    dx = np.abs(s - 0.5) * length
    furrows = _bump((dx - 0.22 * length) * (1 / (0.035 * px))) * _bump((t - 0.05 * px) * (1 / (0.11 * px)))
    patch.scale(1 - 0.6 * k * furrows)


def _paint_chin(ctx: _Ctx) -> None:
  """Mentolabial sulcus under the lower lip; AU17 deepens it and wrinkles the chin boss."""
  px = ctx.px
  right = ctx.right()
  centre = ctx.lerp(57, 8, 0.35)
  a, b = centre - right * 0.22 * px, centre + right * 0.22 * px
  boss = ctx.lerp(57, 8, 0.68)
  up = ctx.up()
  pts = np.stack([a, b, boss - right * 0.3 * px, boss + right * 0.3 * px, boss - up * 0.27 * px], 1)
  with ctx.patch(pts, 0.1 * px) as patch:
    if patch.empty:
      return
    k17 = ctx.a(17)
    s, t, length = patch.frame(a, b)
    t += 0.05 * px * 4 * (s - s * s)
    sulcus = _bump(t * (1 / (0.035 * px))) * _ends(s, length, 0.2 * float(length.mean()))
    factor = 1 - (0.1 + 0.35 * k17) * sulcus
    if float(k17.max()) > 0.02:
      factor += k17 * (0.1 - 0.2 * np.abs(ctx.crop("mottle", patch))) * _blob(patch, boss, 0.26 * px)
    patch.scale(factor)


def _capsule(x: np.ndarray, t: np.ndarray, x0: float, x1: float, t0: float, radius: float) -> np.ndarray:
  """Signed distance to a capsule along x from x0 to x1 at offset t0 (negative inside)."""
  dx = x - np.clip(x, x0, x1)
  dt = t - t0
  d = dx * dx + dt * dt
  np.sqrt(d, out=d)
  d -= radius
  return d


def _hand_distance(x: np.ndarray, t: np.ndarray, thumb_side: float) -> np.ndarray:
  """Signed distance (units of the hand size) to a flat hand with fingers along +x and a
  forearm reaching back to x = -3."""
  d = np.maximum(np.abs(x) - 0.45, np.abs(t) - 0.42) - 0.1           # palm
  d = np.minimum(d, np.maximum(np.abs(x + 1.45) - 1.55, np.abs(t) - 0.36))  # forearm
  for offset, length in ((-0.36, 0.7), (-0.12, 0.88), (0.12, 0.84), (0.36, 0.62)):
    d = np.minimum(d, _capsule(x, t, 0.45, 0.45 + length, offset, 0.11))
  rx, rt = 0.8 * x - 0.6 * thumb_side * t, 0.6 * thumb_side * x + 0.8 * t  # thumb, rotated
  return np.minimum(d, _capsule(rx, rt, 0.1, 0.55, 0.5 * thumb_side, 0.12))


def _paint_occluder(ctx: _Ctx) -> None:
  """A hand (palm, fingers, thumb, forearm) or a bar sliding into the frame over the face."""
  scene = ctx.scene
  presence = scene.occ_in[ctx.frames]
  if scene.occluder == 0 or float(presence.max()) < 0.01:
    return
  size = ctx.img.shape[-1]
  tx, ty, extent, angle, ex, ey = scene.occ_geom
  entry = np.array([ex, ey])
  centre = (np.array([tx, ty]) + (1 - presence[:, None]) * 1.3 * entry) * size
  r = extent * size
  if scene.occluder == 1:  # fingers point the way the hand moves, the forearm trails outside
    tip = centre - entry * r
    with ctx.patch(np.stack([centre + entry * 3 * r, tip - entry * 0.6 * r], 1), 1.2 * r) as patch:
      if patch.empty:
        return
      s, t, length = patch.frame(centre, tip)
      dist = _hand_distance(s * length * (1 / r), t * (1 / r), 1.0 if angle < np.pi / 2 else -1.0)
      alpha = _inside(dist * -r)
      patch.blend(alpha, scene.occ_colour, 0.6 + 0.35 * _clamp(dist * -4))
    return
  axis = np.array([np.cos(angle), np.sin(angle)])
  pts = np.stack([centre - axis * 2 * r, centre + axis * 2 * r], 1)
  with ctx.patch(pts, 0.5 * r) as patch:
    if patch.empty:
      return
    s, t, length = patch.frame(pts[:, 0], pts[:, 1])
    alpha = _inside(0.35 * r - np.abs(t)) * _inside(2 * r - np.abs((s - 0.5) * length))
    patch.blend(alpha, scene.occ_colour, 0.7 + 0.3 * _clamp(1 - np.abs(t) * (1 / (0.35 * r))))


def _camera_out(ctx: _Ctx, image: np.ndarray) -> None:
  """Sensor noise and quantisation into image [T,H,W,3] uint8 (gain is already applied)."""
  img, scene = ctx.img, ctx.scene
  noise = _textures(img.shape[-1])["noise"]
  size = img.shape[-1]
  for i, (oy, ox) in enumerate((scene.noise_offset[ctx.frames] * size).astype(int)):
    img[:, i] += noise[oy:oy + size, ox:ox + size] * (scene.noise_std * 255.0)
  _clamp(img, 0, 255)
  planes = img.astype(np.uint8)
  for c in range(3):
    image[..., c] = planes[c]


def _render_chunk(ctx: _Ctx, background: np.ndarray, image: np.ndarray) -> None:
  """Paint back to front: background, body, ears, hair and face, facial details, hair in front
  of the face, occluder."""
  np.multiply(background[:, None], ctx.gain.T[:, :, None, None], out=ctx.img)
  _paint_body(ctx)
  _paint_ears(ctx)
  head = _paint_head(ctx)
  _paint_forehead(ctx)
  _paint_glabella(ctx)
  _paint_folds(ctx)
  _paint_cheeks(ctx)
  _paint_corner_marks(ctx)
  _paint_chin(ctx)
  _paint_crow(ctx, 39, 36)
  _paint_crow(ctx, 42, 45)
  _paint_brow(ctx, "brow_l", inner_last=True)
  _paint_brow(ctx, "brow_r", inner_last=False)
  _paint_eye(ctx, "eye_l", outer_p0=True)
  _paint_eye(ctx, "eye_r", outer_p0=False)
  _paint_nose(ctx)
  _paint_mouth(ctx)
  _paint_hair_front(ctx, head)
  _paint_occluder(ctx)
  _camera_out(ctx, image)


@functools.cache
def _raise_malloc_thresholds() -> None:
  """Allocate and free 16 MB once. glibc's malloc then adapts its thresholds and serves the
  renderer's many short-lived temporaries from its heap instead of fresh, page-faulting mmaps
  (about 15% of the render time). A process that has ever freed such a large array (as any
  training pipeline does) is already in this state; elsewhere this is a no-op."""
  np.empty(16 << 20, np.uint8)


def render_frames(identity: Identity, intensity: np.ndarray, pose: np.ndarray, scene: Scene,
                  image_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
  """Render T frames: (image uint8 [T,H,W,3], landmarks float32 [T,68,2]).

  The single renderer behind ``generate_clip``; call it directly for controlled renders, e.g.
  one AU at apex, frontal pose and a clean ``sample_scene(rng, T, nuisance=False)``.
  """
  _raise_malloc_thresholds()
  act = _activation(identity, np.asarray(intensity, _F32))
  canon, lower_b = _face_model(identity, act, scene.blink)
  cam = _camera(np.asarray(pose, _F32), scene, image_size)
  landmarks = cam.project(canon).astype(_F32)
  light = np.einsum("tji,j->ti", cam.rot, scene.light.astype(np.float64)).astype(_F32)
  contours = _fit_contours(landmarks)
  shade = _landmark_shade(identity, canon, lower_b, light, scene)
  background = _background(scene, image_size)
  num = len(act)
  image = np.empty((num, image_size, image_size, 3), np.uint8)
  step = max(1, math.ceil(num / math.ceil(num / _CHUNK))) if num else 1  # balanced chunks
  for start in range(0, num, step):
    sl = slice(start, min(num, start + step))
    ctx = _Ctx(idn=identity, scene=scene, frames=sl,
               img=np.empty((3, sl.stop - sl.start, image_size, image_size), _F32),
               gain=(scene.exposure[sl, None] * scene.gain[None] * 255.0).astype(_F32),
               lm=landmarks[sl], contours={name: c[sl] for name, c in contours.items()},
               shade=shade[sl], cam=cam.frames(sl), lower_b=lower_b[sl], act=act[sl],
               act_t=np.ascontiguousarray(act[sl].T)[..., None, None],
               px=float(cam.scale[sl].mean()), light=light[sl])
    _render_chunk(ctx, background, image[sl])
  return image, landmarks


# Factor -> the per-frame Scene fields it varies over a clip ("AUs" and "head pose" vary the
# intensity and pose tracks; "all" is the clip as sampled).
_SCENE_FACTORS = {"camera (shift, zoom)": ("offset", "zoom"), "exposure": ("exposure",),
                  "gaze, blinks": ("gaze", "blink"), "occluder": ("occ_in",),
                  "sensor noise": ("noise_offset",)}
CLIP_FACTORS: tuple[str, ...] = ("all", "AUs", "head pose", *_SCENE_FACTORS)


def generate_clip(identity: Identity, clip_index: int, num_frames: int = 32, image_size: int = 128,
                  seed: int = 0, varying: str = "all") -> dict[str, np.ndarray]:
  """One clip: image [T,H,W,3] uint8, landmarks [T,68,2] float32, intensity [T,15] float32 in
  [0,5], occurrence [T,15] uint8 (= intensity >= 2), pose [T,3] float32 (yaw, pitch, roll deg).

  `varying` (one of CLIP_FACTORS) keeps just that factor changing over time and holds every
  other one at its first frame's value: the same person, scene and landmarks of the first frame
  as the clip, its pixels to a grey level (a chunk renders at its frames' mean scale)."""
  if varying not in CLIP_FACTORS:
    raise ValueError(f"varying={varying!r}; choose one of {', '.join(CLIP_FACTORS)}")
  rng = _rng(seed, identity.subject_index, clip_index, _CLIP_TAG)
  intensity = sample_intensity(rng, identity, num_frames)
  pose = sample_pose(rng, num_frames)
  scene = sample_scene(rng, num_frames)
  if varying != "all":
    held = lambda a: np.repeat(a[:1], len(a), axis=0)
    scene = dataclasses.replace(scene, **{
        f: getattr(scene, f) if f in _SCENE_FACTORS.get(varying, ()) else held(getattr(scene, f))
        for fields in _SCENE_FACTORS.values() for f in fields})
    intensity = intensity if varying == "AUs" else held(intensity)
    pose = pose if varying == "head pose" else held(pose)
  image, landmarks = render_frames(identity, intensity, pose, scene, image_size)
  return {"image": image, "landmarks": landmarks, "intensity": intensity,
          "occurrence": (intensity >= 2).astype(np.uint8), "pose": pose}
