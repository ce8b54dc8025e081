"""How much of a face's motion to a reference frame of its sequence one frame can tell: the
learnability of a single-image flow target built from pairs, on a fold's training store.

For every training sequence, each frame's landmarks are aligned onto the sequence's first frame by
the similarity of the stable landmarks (wsrtl_jax.methods.wsrtl.STABLE_LANDMARKS), leaving the
face's own motion. Three references: the first frame, the most neutral-looking frame (landmarks
nearest the sequence's median aligned shape) and that median shape. For each, a ridge regression
from the frame's own AU labels and landmarks to its aligned landmark motion to the reference,
fitted on 3/4 of the frames (shuffled) and scored (R^2) on the rest. Also the share of frames,
and of reference frames, with an AU on.

  .venv/bin/python tools/flow_reference_audit.py --config configs/synthau_wsrtl.py
"""
from __future__ import annotations

import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_pipeline.alignment import fit_similarity, transform_points  # noqa: E402
from tools.training_records import training_records  # noqa: E402
from wsrtl_jax.methods.wsrtl import STABLE_LANDMARKS  # noqa: E402


def aligned_onto(points: np.ndarray, onto: np.ndarray) -> np.ndarray:
  """`points` [68, 2] moved by the least-squares similarity of their stable landmarks onto
  `onto`'s."""
  stable = list(STABLE_LANDMARKS)
  return transform_points(points, fit_similarity(points[stable], onto[stable])).astype(np.float64)


def ridge_r2(features: np.ndarray, targets: np.ndarray, lam: float = 10.0, seed: int = 0
             ) -> float:
  """Held-out R^2 (last quarter after a shuffle) of a ridge regression with a bias."""
  order = np.random.default_rng(seed).permutation(len(features))
  x = np.concatenate([features[order], np.ones((len(order), 1))], 1)
  y = targets[order]
  cut = len(x) * 3 // 4
  w = np.linalg.solve(x[:cut].T @ x[:cut] + lam * np.eye(x.shape[1]), x[:cut].T @ y[:cut])
  residual = y[cut:] - x[cut:] @ w
  return float(1 - (residual ** 2).sum() / ((y[cut:] - y[:cut].mean(0)) ** 2).sum())


def main() -> None:
  _, records = training_records(__doc__.split("\n\n")[0])
  keys = ("sequence", "landmarks", "au_occurrence")
  sequences = collections.defaultdict(list)
  for ex in records.map(lambda e: {k: e[k] for k in keys}).as_numpy_iterator():
    sequences[ex["sequence"]].append((ex["landmarks"], ex["au_occurrence"]))
  labels, shapes, motion = [], [], {"first frame": [], "most neutral frame": [],
                                    "median shape": []}
  reference_on = {"first frame": [], "most neutral frame": []}
  for frames in sequences.values():
    points = np.stack([f[0] for f in frames]).astype(np.float64)
    occurrence = np.stack([f[1] for f in frames])
    aligned = np.stack([aligned_onto(p, points[0]) for p in points])
    median = np.median(aligned, 0)
    neutral = int(np.argmin(((aligned - median) ** 2).sum((1, 2))))
    reference_on["first frame"].append(occurrence[0].max() > 0)
    reference_on["most neutral frame"].append(occurrence[neutral].max() > 0)
    labels.append(occurrence)
    shapes.append(points.reshape(len(points), -1))
    for name, reference in (("first frame", aligned[0]), ("most neutral frame", aligned[neutral]),
                            ("median shape", median)):
      motion[name].append((aligned - reference).reshape(len(points), -1))
  labels = np.concatenate(labels).astype(np.float64)
  shapes = np.concatenate(shapes)
  shapes = (shapes - shapes.mean(0)) / (shapes.std(0) + 1e-6)
  features = np.concatenate([labels, shapes], 1)
  print(f"{len(sequences)} training sequences, {len(labels)} frames; share of frames with an AU "
        f"on: {np.mean(labels.max(1) > 0):.2f}")
  for name, on in reference_on.items():
    print(f"  share of {name}s with an AU on: {np.mean(on):.2f}")
  for name, values in motion.items():
    values = np.concatenate(values)
    print(f"reference {name}: mean |aligned landmark motion| {np.abs(values).mean():.3f} px; "
          f"R^2 from the frame's labels {ridge_r2(labels, values):.3f}, "
          f"from its labels and landmarks {ridge_r2(features, values):.3f}")


if __name__ == "__main__":
  main()
