"""Subject-exclusive folds: which part a fold tests on, and the validation subjects it holds out."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

NUM_PARTS = 3


def test_part(fold: int) -> int:
  """Fold k tests on part 4-k: fold 1 on part 3, fold 2 on part 2, fold 3 on part 1 (the
  standard BP4D and DISFA protocol; docs/DATA.md, Folds)."""
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


@dataclasses.dataclass(frozen=True)
class Part:
  """A store's split and the subjects of it that a role (train, validation, test) takes."""
  split: str
  subjects: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FoldSplits:
  """Subject-exclusive train / validation / test of one fold."""
  aus: tuple[int, ...]
  frame_size: int
  frame_step: int  # Frame-number difference between consecutive frames of a sequence.
  enlarge: float  # Face box enlargement of the frames (alignment.alignment_matrix).
  train: Part
  validation: Part
  test: Part


def part_splits(fold: int, num_val_subjects: int, subjects_of: Callable[[str], list[str]],
                **store) -> FoldSplits:
  """The fold of a store in parts `part1..3` (SynthAU): it tests on part 4-k, trains on the
  others and holds `num_val_subjects` of their subjects out for validation. `subjects_of(split)`
  names the subjects of a split such as "part1+part2"; `store` gives FoldSplits' aus,
  frame_size, frame_step and enlarge. A bad fold or count raises ValueError naming the setting."""
  try:
    test = f"part{test_part(fold)}"
  except ValueError as e:
    raise ValueError(f"data.fold: {e}") from None
  train = "+".join(f"part{p}" for p in range(1, NUM_PARTS + 1) if f"part{p}" != test)
  subjects = subjects_of(train)
  try:
    kept, val = carve_validation(subjects, num_val_subjects)
  except ValueError as e:
    raise ValueError(f"data.num_val_subjects: {e}") from None
  return FoldSplits(train=Part(train, tuple(kept)), validation=Part(train, tuple(val)),
                    test=Part(test, tuple(subjects_of(test))), **store)
