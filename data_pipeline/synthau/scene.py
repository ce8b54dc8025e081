"""A SynthAU clip's nuisance: light, background, camera jitter, gaze, blinks, an occluder and
sensor noise."""
from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline.synthau.identity import _skin_tone
from data_pipeline.synthau.timelines import _envelope, _smooth_track

_F32 = np.float32


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


def _occluder(rng: np.random.Generator,
              num_frames: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
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
