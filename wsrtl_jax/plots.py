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
    ax.plot([r["step"] for r in data], [r[key] for r in data], marker="o" if data is val else None)
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
