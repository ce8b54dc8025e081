"""SynthAU's facial features and the marks AUs leave, painted over the skin: brows, eyes and
crow's feet, nose, mouth, nasolabial folds, cheeks, dimples, forehead and glabella lines, chin."""
from __future__ import annotations

import numpy as np

from data_pipeline.synthau.canvas import (_CONTOURS, _Ctx, _Patch, _blob, _bump, _clamp, _curve,
                                          _ends, _inside, _span, _t1)
from data_pipeline.synthau.common import _COL


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
    taper = _clamp(np.minimum(inner * (length / (0.6 * thick)),
                              (1 - inner) * (length / (0.25 * thick))))
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
  reach = np.concatenate([lm[:, p0i:p0i + 6],
                          (lm[:, [p0i, p1i]] + 1.7 * height_px * ctx.up()[:, None])], 1)
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
    highlight = (_bump((ti - seam - 0.45 * (bot_o - seam)) * (1 / (0.04 * px)))
                 * _bump((si - 0.5) * (1 / 0.3)))
    tone += 0.25 * below * highlight
    patch.blend(lips, _lip_tone(ctx), tone * light)
    if float((lm[:, 66, 1] - lm[:, 62, 1]).max()) > 0.05:
      _paint_mouth_interior(patch, si, ti, li, top_i, bot_i, px, light)
    w = max(0.7, 0.022 * px)
    factor = 1 - 0.55 * _bump((ti - seam) * (1 / w)) * _clamp(np.minimum(si + 0.06, 1.06 - si) * 12)
    factor -= (0.18 * _bump((to - bot_o - 0.04 * px) * (1 / (0.05 * px)))
               * _bump((so - 0.5) * (1 / 0.55)))
    factor -= 0.2 * _blob(patch, lm[:, 48], 0.035 * px) + 0.2 * _blob(patch, lm[:, 54], 0.035 * px)
    patch.scale(factor)


def _paint_mouth_interior(patch: _Patch, si, ti, li, top_i, bot_i, px: float,
                          light: np.ndarray) -> None:
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
    furrows = (_bump((dx - 0.22 * length) * (1 / (0.035 * px)))
               * _bump((t - 0.05 * px) * (1 / (0.11 * px))))
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
      factor += (k17 * (0.1 - 0.2 * np.abs(ctx.crop("mottle", patch)))
                 * _blob(patch, boss, 0.26 * px))
    patch.scale(factor)


def paint_features(ctx: _Ctx) -> None:
  """Every feature and mark, in painting order: wrinkles and folds first, brows, eyes, nose and
  mouth over them."""
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
