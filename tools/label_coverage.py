"""Who the labelled frames of a fold's training split are: how many of its sequences and subjects
have at least one frame that keeps its labels at `data.label_fraction` (the same fixed hash the
training stream uses). Where nearly every subject is among them, the unlabelled frames show the
network no new faces, only other frames of faces it is taught on.

  .venv/bin/python tools/label_coverage.py --config configs/synthau_wsrtl.py
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_pipeline import input_pipeline  # noqa: E402
from tools.training_records import training_records  # noqa: E402


def main() -> None:
  config, records = training_records(__doc__.split("\n\n")[0])
  fraction = config.data.label_fraction
  frames = records.map(
      lambda e: (e["subject"], e["sequence"], input_pipeline.keeps_label(e, fraction)))
  seen = {"subjects": set(), "sequences": set()}
  labelled = {"subjects": set(), "sequences": set()}
  count = total = 0
  for subject, sequence, keep in frames.as_numpy_iterator():
    total += 1
    for name, key in (("subjects", subject), ("sequences", sequence)):
      seen[name].add(key)
      if keep:
        labelled[name].add(key)
    count += int(keep)
  print(f"{config.data.name} fold {config.data.fold}, label_fraction {fraction}: {count} of "
        f"{total} training frames labelled; "
        + "; ".join(f"{len(labelled[n])} of {len(seen[n])} {n} "
                    f"({len(labelled[n]) / len(seen[n]):.0%}) with a labelled frame"
                    for n in ("subjects", "sequences")))


if __name__ == "__main__":
  main()
