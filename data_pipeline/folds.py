"""Subject-exclusive folds: which part a fold tests on, and the validation subjects it holds out."""
from __future__ import annotations

import numpy as np

NUM_PARTS = 3


def test_part(fold: int) -> int:
  """Fold k tests on part 4-k (DESIGN.md 3.1: fold 1 tests on part 3)."""
  if fold not in range(1, NUM_PARTS + 1):
    raise ValueError(f"fold must be 1, 2 or 3, got {fold}")
  return NUM_PARTS + 1 - fold


def carve_validation(subjects: list[str], count: int) -> tuple[list[str], list[str]]:
  """(training, validation): `count` evenly spaced subjects of the sorted pool are held out."""
  pool = sorted(subjects)
  if not 0 <= count < len(pool):
    raise ValueError(f"{count} validation subjects must be fewer than the {len(pool)} "
                     "training subjects")
  picks = set(np.linspace(0, len(pool) - 1, count).round().astype(int).tolist()) if count else set()
  return ([s for i, s in enumerate(pool) if i not in picks],
          [s for i, s in enumerate(pool) if i in picks])
