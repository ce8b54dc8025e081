"""AU metrics over a whole test fold (per-AU F1 at a threshold, accuracy, AUC) and paper-style
tables."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _auc(scores: np.ndarray, positives: np.ndarray) -> float:
  """Area under the ROC curve (Mann-Whitney, ties averaged); nan without both classes."""
  n_pos, n_neg = int(positives.sum()), int((~positives).sum())
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  order = np.argsort(scores, kind="mergesort")
  ranks = np.empty(len(scores), np.float64)
  sorted_scores = scores[order]
  # Average ranks over ties.
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  mean_rank = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(mean_rank, counts)
  return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def au_metrics(probs: np.ndarray, labels: np.ndarray, aus: Sequence[int],
               threshold: float = 0.5) -> dict:
  """Per-AU F1 (TP/FP/FN summed over the fold), accuracy and AUC; labels < 0 are masked.

  Averages are over AUs; an AU whose metric is undefined (no positives, for AUC) is left out of
  that average and reported as null.
  """
  per_au_f1, per_au_acc, per_au_auc = {}, {}, {}
  for j, au in enumerate(aus):
    known = labels[:, j] >= 0
    y = labels[known, j] == 1
    p = probs[known, j]
    pred = p >= threshold
    tp, fp, fn = np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y)
    name = f"AU{au}"
    per_au_f1[name] = float(2 * tp / max(2 * tp + fp + fn, 1))
    per_au_acc[name] = float(np.mean(pred == y)) if known.any() else float("nan")
    per_au_auc[name] = _auc(p, y)
  nanmean = lambda d: float(np.nanmean(list(d.values())))
  clean = lambda d: {k: (None if np.isnan(v) else v) for k, v in d.items()}
  return {"avg_f1": nanmean(per_au_f1), "per_au_f1": per_au_f1,
          "accuracy": nanmean(per_au_acc), "per_au_accuracy": clean(per_au_acc),
          "auc": nanmean(per_au_auc), "per_au_auc": clean(per_au_auc),
          "num_frames": int(labels.shape[0])}


def all_positive_f1(labels: np.ndarray, aus: Sequence[int]) -> dict:
  """The chance reference: F1 of predicting every AU present in every frame."""
  return au_metrics(np.ones(labels.shape, np.float32), labels, aus)


def format_f1_table(rows: dict[str, dict[str, float]], aus: Sequence[int]) -> str:
  """Papers' layout: one row per method, one column per AU (F1 x 100), the average last."""
  names = [f"AU{a}" for a in aus]
  width = max([len(r) for r in rows] + [6])
  header = f"{'method':<{width}} " + " ".join(f"{n:>5}" for n in names) + "   avg"
  lines = [header, "-" * len(header)]
  for method, per_au in rows.items():
    values = [per_au.get(n) for n in names]
    cells = " ".join("    -" if v is None else f"{100 * v:5.1f}" for v in values)
    known = [v for v in values if v is not None]
    lines.append(f"{method:<{width}} {cells} {100 * np.mean(known):5.1f}")
  return "\n".join(lines)
