"""What changes over a SynthAU clip: AU intensities from overlapping expression events, and a
smooth head pose."""
from __future__ import annotations

import numpy as np

from data_pipeline.synthau.common import AUS, _COL
from data_pipeline.synthau.expressions import _EVENT_FRAMES, _EVENTS
from data_pipeline.synthau.identity import Identity

_F32 = np.float32


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
