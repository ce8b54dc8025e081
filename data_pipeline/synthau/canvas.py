"""What SynthAU's layer painters paint with and on: fixed textures, soft-edge and bump
primitives, curves fitted through landmarks, the patch a layer paints in and the context of one
chunk of frames.

Images are planar float32 [3,T,H,W] in 0..1; per-frame parameters are shaped [T,1,1]; every
layer works on a small contiguous copy of its bounding box (numpy is several times faster on
contiguous arrays than on strided views).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data_pipeline.synthau.common import _COL, _rng
from data_pipeline.synthau.face_model import _Camera
from data_pipeline.synthau.identity import Identity
from data_pipeline.synthau.scene import Scene

_F32 = np.float32


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
    "brow_l": (17, 21, (18, 19, 20)), "brow_r": (22, 26, (23, 24, 25)),
    "brows": (17, 26, (19, 21, 22, 24)),
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
    c = np.stack([ex / length, ey / length, ex, ey, p0[:, 0], p0[:, 1], length])
    c = c.astype(_F32)[..., None, None]
    dx, dy = self.X - c[4], self.Y - c[5]
    s = dx * c[0]
    s = s + dy * c[1]
    t = dy * c[2]
    t = t - dx * c[3]
    return s, t, c[6]

  def blend(self, alpha: np.ndarray, rgb, shade: np.ndarray | None = None,
            rows: slice = slice(None)) -> None:
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
