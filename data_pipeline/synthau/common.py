"""What every SynthAU module shares: the AU order and independent, seeded RNG streams."""
from __future__ import annotations

import numpy as np

from data_pipeline.au_sets import AU_SETS

AUS: tuple[int, ...] = AU_SETS["synthau"]

_COL = {au: i for i, au in enumerate(AUS)}  # AU -> its column in intensity arrays


def _rng(*key: int) -> np.random.Generator:
  """Independent generator for a key such as (seed, subject, clip, tag); no global state."""
  return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))
