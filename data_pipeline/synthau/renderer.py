"""The SynthAU renderer: frames painted back to front from the landmarks (background, body, ears,
hair and skin, facial features, hair in front of the face, occluder), then sensor noise and
quantisation."""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from data_pipeline.synthau.canvas import (_Ctx, _Patch, _bump, _clamp, _fit_contours, _inside,
                                          _t1, _textures)
from data_pipeline.synthau.face_model import _C0, _activation, _camera, _face_model, _outline_field
from data_pipeline.synthau.features import paint_features
from data_pipeline.synthau.identity import _BUZZ, _LONG, _MEDIUM, _SHORT, _VOLUME, Identity
from data_pipeline.synthau.scene import Scene

_CHUNK = 16                          # frames rendered together (keeps arrays cache-sized)
_F32 = np.float32


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


def _canon_patch(ctx: _Ctx, xs: tuple[float, float], ys: tuple[float, float],
                 margin: float = 2.0) -> _Patch:
  """Patch covering a canonical head-plane rectangle in every frame of the chunk."""
  corners = np.array([[x, y, 0.0] for x in xs for y in ys], _F32)
  return ctx.patch(ctx.cam.project(np.broadcast_to(corners, (len(ctx.lm), 4, 3))), margin)


def _neck_alpha(ctx: _Ctx, patch: _Patch, top: float = 0.6,
                rows: slice = slice(None)) -> np.ndarray:
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
    pts = np.stack([origin + scale[:, None] * np.array([-half, top]),
                    origin + scale[:, None] * half], 1)
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


def _hair_field(ctx: _Ctx, patch: _Patch, u: np.ndarray,
                v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _face_field(ctx: _Ctx, u: np.ndarray,
                v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _skin(ctx: _Ctx, patch: _Patch, u: np.ndarray, v: np.ndarray,
          rows: slice) -> tuple[np.ndarray, np.ndarray]:
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
  face_top = (_C0 - idn.head_top if idn.hair_style == _BUZZ
              else max(_C0 - idn.head_top, idn.hairline - 0.15))
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
    centre = np.broadcast_to(np.array([side * idn.face_w * 0.97, 0.22, -0.3], _F32),
                             (len(ctx.lm), 1, 3))
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


def _capsule(x: np.ndarray, t: np.ndarray, x0: float, x1: float, t0: float,
             radius: float) -> np.ndarray:
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
  paint_features(ctx)
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
