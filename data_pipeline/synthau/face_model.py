"""SynthAU landmarks: a parametric 3-D face of the identity, deformed by the AUs, rotated by the
head pose and projected orthographically into the image.

The canonical face frame has its origin between the eye centres, x to image right, y down, z
towards the camera, one unit ~ half a face width.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from data_pipeline.synthau.common import AUS
from data_pipeline.synthau.identity import Identity
from data_pipeline.synthau.scene import Scene

_S_FRAC = 0.285                      # pixels per canonical unit, as a fraction of the image size
_EYE_ROW = 0.39                      # image row of the eye line, as a fraction of the image size
_C0 = 0.15                           # canonical y of the head-ellipse centre
_PIVOT = np.array([0.0, 0.25, -0.35])  # head rotation centre (canonical units)
_F32 = np.float32


def _activation(identity: Identity, intensity: np.ndarray) -> np.ndarray:
  """[T,15] AU activation in 0..1.2: labelled intensity plus the resting pseudo-intensity, / 5."""
  return np.clip((intensity + np.array(identity.resting_au, _F32)) / 5.0, 0, 1.2)


def _outline_field(idn: Identity, x: np.ndarray, y: np.ndarray,
                   yp: np.ndarray | None = None) -> np.ndarray:
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
  """[T,17,2] face contour points on the rendered head outline (see ``renderer._face_field``)."""
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
  bridge_y = (top + (tip - top) * np.array([0, 1 / 3, 2 / 3, 1.0])
              - np.array([0, 0, 0.03, 0.02]) * a[9])
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
  corner = (-0.13 * a[12] - 0.02 * a[14] + 0.11 * a[15] + 0.025 * a[17] - 0.025 * a[10]
            + 0.05 * a[26])
  centre = -0.03 * a[10] - 0.045 * a[17] + 0.01 * a[15]
  opening = 0.09 * a[25] + 0.24 * a[26] + 0.04 * a[12] * a[25]
  thick_u = idn.upper_lip * np.clip(1 - 0.5 * a[23] - 0.6 * a[24] + 0.3 * a[10] - 0.2 * a[12],
                                    0.25, 2)
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


def _face_model(identity: Identity, act: np.ndarray,
                blink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
  cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
  cr, sr = np.cos(roll), np.sin(roll)
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
