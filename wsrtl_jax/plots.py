"""PNGs next to the numbers: training curves, the per-AU F1 of an evaluation, what moves a
representation over a clip, sample sheets, and AU timelines of a video."""
from __future__ import annotations

import os

from wsrtl_jax.logging_utils import read_jsonl


# What CLP logs of its contrastive tasks: the share of queries whose positive key beats the queue,
# and the share of clip frame pairs in temporal order.
PRETRAINING_ACCURACIES = ("nce_top1", "tcl_ordered")


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # Files only; no display.
  import matplotlib.pyplot as plt
  return plt


def _save(plt, fig, path: str) -> str:
  """Lays out `fig`, writes it to `path` and frees it."""
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def plot_training_curves(workdir: str) -> str:
  """`workdir/training_curves.png`: loss (and its terms), learning rate, and validation average
  F1 by step; for pretraining, which has no validation, the contrastive accuracies instead."""
  plt = _pyplot()
  rows, val = read_jsonl(os.path.join(workdir, "metrics.jsonl")), read_jsonl(
      os.path.join(workdir, "validation.jsonl"))
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
  last = ((val, ["val_avg_f1"], "validation average F1") if val else
          (rows, [k for k in PRETRAINING_ACCURACIES if rows and k in rows[-1]],
           "contrastive accuracies"))
  terms = sorted({k for r in rows for k in r if k.startswith("loss_")})
  panels = [(rows, ["loss"] + terms, "training loss"),
            (rows, ["learning_rate"], "learning rate"), last]
  for ax, (data, keys, title) in zip(axes, panels):
    for key in keys:  # A method's loss terms (loss_au, loss_flow, ...) beside the total.
      ax.plot([r["step"] for r in data if key in r], [r[key] for r in data if key in r],
              marker="o" if data is val else None, label=key, lw=1.5 if key == keys[0] else 0.8)
    if len(keys) > 1:
      ax.legend(fontsize=7)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  return _save(plt, fig, os.path.join(workdir, "training_curves.png"))


def plot_per_au_rows(rows: dict[str, dict[str, float]], path: str, title: str,
                     grey_last: bool = False) -> str:
  """Grouped bars of per-AU F1 (one group per AU, one bar per row, its average in the legend);
  `grey_last`: the last row is a reference drawn in grey."""
  plt = _pyplot()
  names = list(next(iter(rows.values())))
  width = 0.8 / len(rows)
  fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(names) * (len(rows) + 1)), 3.4))
  for r, (row, per_au) in enumerate(rows.items()):
    known = [v for v in per_au.values() if v is not None]
    grey = dict(color="lightgray") if grey_last and r == len(rows) - 1 else {}
    ax.bar([i + (r - (len(rows) - 1) / 2) * width for i in range(len(names))],
           [100 * (per_au.get(n) or 0) for n in names], width,
           label=f"{row} (avg {100 * sum(known) / len(known):.1f})", **grey)
  ax.set_xticks(list(range(len(names))), names)
  ax.set_ylabel("F1")
  ax.set_ylim(0, 100)
  ax.set_title(title)
  ax.legend(loc="upper left", fontsize=8)
  return _save(plt, fig, path)


def plot_per_au_f1(result: dict, path: str) -> str:
  """Bar chart of per-AU F1 of an `eval.json` result beside the all-positive chance F1."""
  return plot_per_au_rows(
      {"model": result["per_au_f1"], "all-positive": result["chance_all_positive"]}, path,
      f"{result['dataset']} fold {result['fold']}, {result['split']} split, step "
      f"{result['step']}", grey_last=True)


def plot_factors(result: dict, path: str) -> str:
  """Bars of `factors.json`: how much each factor, varied alone over a clip, moves the frozen
  output, and how much per grey level of pixel change."""
  plt = _pyplot()
  factors = result["factors"]
  names = list(factors)[::-1]  # "all" on top.
  code = [factors[n]["code_change_x1000"] for n in names]
  per_level = [c / max(factors[n]["pixel_change"], 1e-6) for c, n in zip(code, names)]
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
  for ax, values, label in ((axes[0], code, "output change (1 - cos to frame 0) x1000"),
                            (axes[1], per_level, "output change per grey level of pixel change")):
    ax.barh(names, values, color=["gray" if n == "all" else "tab:blue" for n in names])
    ax.set_xlabel(label)
    ax.grid(axis="x", alpha=0.3)
  source = "untrained" if result["random_init"] else f"step {result['step']}"
  fig.suptitle(f"What moves the output over a clip: {result['workdir']} ({source}), "
               f"{result['clips']} test clips of {result['frames']} frames", fontsize=9)
  return _save(plt, fig, path)


def plot_au_timeline(seconds, probabilities, aus, threshold: float, path: str, title: str) -> str:
  """One strip per AU of its probability over a video's time (gaps where no face was found,
  NaN), the decision threshold dashed: an OpenFace-style AU timeline."""
  plt = _pyplot()
  fig, axes = plt.subplots(len(aus), 1, figsize=(10, 0.55 * len(aus) + 0.9), sharex=True,
                           squeeze=False)
  for ax, au, p in zip(axes[:, 0], aus, probabilities.T):
    ax.fill_between(seconds, p, color="tab:blue", alpha=0.35, lw=0)
    ax.plot(seconds, p, color="tab:blue", lw=0.8)
    ax.axhline(threshold, color="gray", ls="--", lw=0.6)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel(f"AU{au:02d}", rotation=0, ha="right", va="center", fontsize=8)
  if len(seconds) > 1:
    axes[-1, 0].set_xlim(seconds[0], seconds[-1])
  axes[-1, 0].set_xlabel("seconds")
  axes[0, 0].set_title(title, fontsize=9)
  fig.subplots_adjust(hspace=0.15)
  return _save(plt, fig, path)


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


def _image_grid(cells: list[list], titles: list[str], path: str, title: str = "",
                row_labels: list[str] | None = None, cell_inches: float = 2.2) -> str:
  """Saves a grid of images (rows of arrays, uint8 or [0, 1] RGB) with column titles and
  optional row labels."""
  plt = _pyplot()
  rows, columns = len(cells), len(titles)
  fig, axes = plt.subplots(rows, columns, figsize=(cell_inches * columns, cell_inches * rows),
                           squeeze=False)
  for r, row in enumerate(cells):
    for c, image in enumerate(row):
      ax = axes[r, c]
      ax.imshow(image, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(titles[c], fontsize=9)
      if c == 0 and row_labels:
        ax.set_ylabel(row_labels[r], fontsize=7)
  if title:
    fig.suptitle(title, fontsize=10)
  return _save(plt, fig, path)


def plot_wsrtl_samples(samples: dict, path: str, title: str = "") -> str:
  """One row per frame: intact input, masked input, reconstruction, target flow and predicted
  flow (both flows on the colour scale of the row's largest target vector; the largest vector of
  each, in pixels of the 1/4 map, in the row's label)."""
  import numpy as np
  columns = [("input", "input"), ("masked", "masked AU regions"),
             ("reconstruction", "masked regions rebuilt"), ("target_flow", "target flow"),
             ("predicted_flow", "predicted flow (1 frame)")]
  cells, labels = [], []
  for r in range(len(samples["input"])):
    largest = {key: float(np.hypot(*np.moveaxis(np.asarray(samples[key][r]), -1, 0)).max())
               for key in ("target_flow", "predicted_flow")}
    scale = max(largest["target_flow"], 0.1)
    cells.append([flow_to_rgb(samples[key][r], scale) if key.endswith("flow")
                  else np.asarray(samples[key][r]).astype(np.uint8) for key, _ in columns])
    labels.append(f"largest flow: target {largest['target_flow']:.2f} px,\n"
                  f"predicted {largest['predicted_flow']:.2f} px")
  return _image_grid(cells, [name for _, name in columns], path, title, labels)


def plot_cir_samples(samples: dict, path: str, title: str = "") -> str:
  """One row per pair of people A, B: A, B, each moved to its own AU code (it should stay as it
  is), and each moved to the other's AU code ("AU of A, identity of B": B's face set as A's)."""
  import numpy as np
  columns = [("faces", 0, "A"), ("faces", 1, "B"), ("own", 0, "A rebuilt"),
             ("own", 1, "B rebuilt"), ("swapped", 0, "AU of A, identity of B"),
             ("swapped", 1, "AU of B, identity of A")]
  cells = [[np.asarray(samples[key][r, person]).astype(np.uint8) for key, person, _ in columns]
           for r in range(len(samples["faces"]))]
  return _image_grid(cells, [name for *_, name in columns], path, title, cell_inches=2.0)
