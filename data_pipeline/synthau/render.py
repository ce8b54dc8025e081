"""Render SynthAU preview images: an AU contact sheet and one clip with its AU timeline.

    python -m data_pipeline.synthau.render --out docs/ [--image_size 128] [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_pipeline.synthau.common import AUS
from data_pipeline.synthau.generator import generate_clip
from data_pipeline.synthau.identity import Identity, sample_identity, subject_id
from data_pipeline.synthau.renderer import render_frames
from data_pipeline.synthau.scene import sample_scene

_LABEL_W = 44
_HEADER_H = 16
_APEX = 4.5
_COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (150, 150, 20), (0, 128, 128), (170, 110, 40),
            (128, 0, 0), (0, 0, 128), (128, 128, 128), (255, 180, 0), (0, 0, 0)]


def _apex_frames(identity: Identity, image_size: int, seed: int) -> np.ndarray:
  """[1+15,H,W,3]: neutral, then each AU alone at apex; frontal pose, clean noise-free scene."""
  num = 1 + len(AUS)
  intensity = np.zeros((num, len(AUS)), np.float32)
  intensity[np.arange(1, num), np.arange(len(AUS))] = _APEX
  pose = np.zeros((num, 3), np.float32)
  rng = np.random.default_rng(np.random.SeedSequence([seed, identity.subject_index, 0x5EE7]))
  scene = dataclasses.replace(sample_scene(rng, num, nuisance=False), noise_std=0.0)
  return render_frames(identity, intensity, pose, scene, image_size)[0]


def contact_sheet(image_size: int = 128, seed: int = 0, num_identities: int = 6) -> Image.Image:
  """Rows: neutral and each AU at apex; columns: identities."""
  columns = [_apex_frames(sample_identity(i, seed), image_size, seed)
             for i in range(num_identities)]
  rows = len(columns[0])
  sheet = Image.new("RGB", (_LABEL_W + num_identities * image_size, _HEADER_H + rows * image_size),
                    "white")
  draw = ImageDraw.Draw(sheet)
  font = ImageFont.load_default()
  for c, frames in enumerate(columns):
    x = _LABEL_W + c * image_size
    draw.text((x + 4, 2), subject_id(c), fill="black", font=font)
    for r, frame in enumerate(frames):
      sheet.paste(Image.fromarray(frame), (x, _HEADER_H + r * image_size))
  for r in range(rows):
    label = "neutral" if r == 0 else f"AU{AUS[r - 1]}"
    draw.text((3, _HEADER_H + r * image_size + image_size // 2 - 5), label, fill="black", font=font)
  return sheet


def _showcase_clip(seed: int, num_frames: int,
                   image_size: int) -> tuple[Identity, dict[str, np.ndarray]]:
  """Among a few candidate clips, the one whose AUs change most, with at most 6 AUs active
  (so the frames show clear expression changes and the timeline stays readable)."""
  best = None
  for subject in range(6):
    identity = sample_identity(subject, seed)
    for clip in range(4):
      data = generate_clip(identity, clip, num_frames, image_size, seed)
      curves = data["intensity"]
      if (curves.max(0) >= 1).sum() > 6:
        continue
      score = float((curves.max(0) - curves.min(0)).sum())
      if best is None or score > best[0]:
        best = (score, identity, data)
  return best[1], best[2]


def _timeline(intensity: np.ndarray, shown: np.ndarray, width: int,
              height: int = 170) -> Image.Image:
  """Line plot of every AU that reaches intensity 1, with a colour legend on the right."""
  img = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(img)
  font = ImageFont.load_default()
  left, right, top, bottom = 30, width - 70, 10, height - 18
  num = len(intensity)

  def xy(t, value):
    return left + (right - left) * t / (num - 1), bottom - (bottom - top) * value / 5.0

  for level in range(6):
    y = xy(0, level)[1]
    draw.line([(left, y), (right, y)], fill=(150, 150, 150) if level == 2 else (225, 225, 225))
    draw.text((4, y - 5), str(level), fill="black", font=font)
  for t in shown:
    x = xy(t, 0)[0]
    draw.line([(x, bottom), (x, bottom + 4)], fill="black")
  draw.text((left, bottom + 5), "frame (ticks: frames shown above); intensity 0-5, "
            "darker grid line: occurrence threshold 2", fill="black", font=font)
  row = 0
  for k, au in enumerate(AUS):
    curve = intensity[:, k]
    if curve.max() < 1.0:
      continue
    colour = _COLOURS[k % len(_COLOURS)]
    draw.line([xy(t, v) for t, v in enumerate(curve)], fill=colour, width=2)
    draw.line([(right + 10, top + 6 + 14 * row), (right + 24, top + 6 + 14 * row)], fill=colour,
              width=2)
    draw.text((right + 28, top + 14 * row), f"AU{au}", fill=colour, font=font)
    row += 1
  return img


def clip_sheet(image_size: int = 128, seed: int = 0, num_frames: int = 48,
               shown: int = 12) -> Image.Image:
  """Frames sampled across one clip, with its AU-intensity timeline underneath."""
  identity, data = _showcase_clip(seed, num_frames, image_size)
  picks = np.linspace(0, num_frames - 1, shown).round().astype(int)
  strip = np.concatenate(list(data["image"][picks]), 1)
  plot = _timeline(data["intensity"], picks, strip.shape[1])
  sheet = Image.new("RGB", (strip.shape[1], _HEADER_H + strip.shape[0] + plot.height), "white")
  title = f"{subject_id(identity.subject_index)}, {num_frames}-frame clip"
  ImageDraw.Draw(sheet).text((4, 2), title, fill="black", font=ImageFont.load_default())
  sheet.paste(Image.fromarray(strip), (0, _HEADER_H))
  sheet.paste(plot, (0, _HEADER_H + strip.shape[0]))
  return sheet


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs"))
  parser.add_argument("--image_size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  args.out.mkdir(parents=True, exist_ok=True)
  for name, image in (("synthau_contact_sheet.png", contact_sheet(args.image_size, args.seed)),
                      ("synthau_clip.png", clip_sheet(args.image_size, args.seed))):
    path = args.out / name
    image.save(path)
    print(path)


if __name__ == "__main__":
  main()
