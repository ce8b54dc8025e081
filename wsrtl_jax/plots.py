"""PNGs next to the numbers: training curves and the per-AU F1 of an evaluation."""
from __future__ import annotations

import os

from wsrtl_jax.logging_utils import read_jsonl


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # Files only; no display.
  import matplotlib.pyplot as plt
  return plt


def plot_training_curves(workdir: str) -> str:
  """`workdir/training_curves.png`: loss, learning rate and validation average F1 by step."""
  plt = _pyplot()
  rows, val = read_jsonl(os.path.join(workdir, "metrics.jsonl")), read_jsonl(
      os.path.join(workdir, "validation.jsonl"))
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
  panels = [(rows, "loss", "training loss"), (rows, "learning_rate", "learning rate"),
            (val, "val_avg_f1", "validation average F1")]
  for ax, (data, key, title) in zip(axes, panels):
    ax.plot([r["step"] for r in data], [r[key] for r in data], marker="o" if data is val else None,
            label=key)
    if key == "loss":  # A method's loss terms (loss_au, loss_flow, ...) beside the total.
      for term in sorted({k for r in data for k in r if k.startswith("loss_")}):
        ax.plot([r["step"] for r in data if term in r], [r[term] for r in data if term in r],
                label=term, lw=0.8)
      if len(ax.get_lines()) > 1:
        ax.legend(fontsize=7)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  path = os.path.join(workdir, "training_curves.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def plot_per_au_f1(result: dict, path: str) -> str:
  """Bar chart of per-AU F1 of an `eval.json` result beside the all-positive chance F1."""
  plt = _pyplot()
  names = list(result["per_au_f1"])
  x = range(len(names))
  fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names)), 3.4))
  ax.bar([i - 0.2 for i in x], [100 * result["per_au_f1"][n] for n in names], 0.4,
         label=f"model (avg {100 * result['avg_f1']:.1f})")
  chance = result["chance_all_positive"]
  ax.bar([i + 0.2 for i in x], [100 * chance[n] for n in names], 0.4, color="lightgray",
         label=f"all-positive (avg {100 * sum(chance.values()) / len(chance):.1f})")
  ax.set_xticks(list(x), names)
  ax.set_ylabel("F1")
  ax.set_ylim(0, 100)
  ax.set_title(f"{result['dataset']} fold {result['fold']}, {result['split']} split, "
               f"step {result['step']}")
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def flow_to_rgb(flow, max_magnitude: float | None = None):
  """Flow [..., H, W, 2] -> RGB [..., H, W, 3] in [0, 1] on the usual colour wheel: hue is the
  direction, saturation the magnitude relative to `max_magnitude` (default: the largest)."""
  import numpy as np
  from matplotlib.colors import hsv_to_rgb
  flow = np.asarray(flow, np.float32)
  magnitude = np.hypot(flow[..., 0], flow[..., 1])
  scale = max_magnitude or max(float(magnitude.max()), 1e-6)
  hue = (np.arctan2(-flow[..., 1], -flow[..., 0]) / np.pi + 1.0) / 2.0
  hsv = np.stack([hue, np.clip(magnitude / scale, 0, 1), np.ones_like(hue)], axis=-1)
  return hsv_to_rgb(hsv)


def plot_wsrtl_samples(samples: dict, path: str, title: str = "") -> str:
  """One row per frame: intact input, masked input, reconstruction, target flow and predicted
  flow (both flows on the colour scale of the row's largest target vector; the largest vector of
  each, in pixels of the 1/4 map, in the row's label)."""
  import numpy as np
  plt = _pyplot()
  rows = len(samples["input"])
  columns = [("input", "input"), ("masked", "masked AU regions"),
             ("reconstruction", "masked regions rebuilt"), ("target_flow", "target flow (TV-L1)"),
             ("predicted_flow", "predicted flow (1 frame)")]
  fig, axes = plt.subplots(rows, len(columns), figsize=(2.2 * len(columns), 2.2 * rows),
                           squeeze=False)
  for r in range(rows):
    largest = {key: float(np.hypot(*np.moveaxis(np.asarray(samples[key][r]), -1, 0)).max())
               for key in ("target_flow", "predicted_flow")}
    scale = max(largest["target_flow"], 0.1)
    for c, (key, name) in enumerate(columns):
      image = np.asarray(samples[key][r])
      shown = flow_to_rgb(image, scale) if key.endswith("flow") else image.astype(np.uint8)
      ax = axes[r, c]
      ax.imshow(shown, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(name, fontsize=9)
      if c == 0:
        ax.set_ylabel(f"largest flow: target {largest['target_flow']:.2f} px,\n"
                      f"predicted {largest['predicted_flow']:.2f} px", fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
