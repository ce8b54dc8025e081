"""A contact sheet of what a training stream yields: one row per clip (or pair), with the
landmarks (grey) and AU centres (red) drawn where the pipeline says they are, so a glance tells
whether alignment, augmentation and the centres agree with the pixels.

  python -m wsrtl_jax.render_streams --config configs/synthau_supervised.py \\
      --config.data.name=face_videos --kind clips --out docs/face_videos_clips.png
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from PIL import Image, ImageDraw

from data_pipeline import input_pipeline
from data_pipeline.config_loading import load_config, override_config, split_overrides
from wsrtl_jax import image_ops

SCALE = 2  # Frames are drawn at twice the network input size.


def _draw_frame(image: np.ndarray, landmarks: np.ndarray, centres: np.ndarray) -> Image.Image:
  frame = Image.fromarray(image).resize((image.shape[1] * SCALE, image.shape[0] * SCALE),
                                        Image.BILINEAR)
  draw = ImageDraw.Draw(frame)
  for points, colour, radius in ((landmarks, (200, 200, 200), 1), (centres.reshape(-1, 2),
                                                                  (255, 40, 40), 2)):
    for x, y in (points + 0.5) * SCALE:
      draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
  return frame


def contact_sheet(batch: dict[str, np.ndarray], rows: int, size: int) -> Image.Image:
  """Rows of units [B, T, ...] side by side, frames left to right in time, as the accelerator
  finishes them (resized to `size`, flipped, colour-jittered)."""
  images = np.asarray(image_ops.finish_images(batch["image"][:rows], batch["flip"][:rows],
                                              batch["jitter"][:rows], size)).astype(np.uint8)
  num_frames, size = images.shape[1], images.shape[2] * SCALE
  sheet = Image.new("RGB", (num_frames * (size + 4), len(images) * (size + 4)), "white")
  for r in range(len(images)):
    for t in range(num_frames):
      frame = _draw_frame(images[r, t], batch["landmarks"][r, t], batch["au_centres"][r, t])
      sheet.paste(frame, (t * (size + 4), r * (size + 4)))
  return sheet


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--kind", default="clips", choices=["pairs", "clips"])
  parser.add_argument("--rows", type=int, default=4)
  parser.add_argument("--out", required=True)
  overrides, rest = split_overrides(sys.argv[1:])
  args = parser.parse_args(rest)
  config = override_config(load_config(args.config), overrides)
  builder = input_pipeline.load_builder(config)
  splits = input_pipeline.fold_splits(config, builder)
  batch = next(input_pipeline.train_stream(config, builder, splits, args.kind, args.rows))
  contact_sheet(batch, args.rows, config.data.image_size).save(args.out)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
