"""The papers' reported per-AU F1 rows (x 100), which `protocol` prints beside ours when the
config names one (`config.paper_row`)."""
from __future__ import annotations

from data_pipeline.errors import UserError

# name: (label, AUs in the paper's column order, F1 per AU).
PAPER_ROWS = {
    "wsrtl_bp4d": ("WSRTL (paper)", (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24),
                   (59.7, 51.7, 61.6, 80.3, 80.9, 85.2, 89.7, 67.8, 52.2, 63.4, 51.4, 46.9)),
    "wsrtl_disfa": ("WSRTL (paper)", (1, 2, 4, 6, 9, 12, 25, 26),
                    (57.3, 51.8, 74.3, 49.8, 44.8, 79.3, 94.6, 64.6)),
}


def paper_row(name: str) -> tuple[str, dict[str, float]]:
  """(label, {"AU1": F1 in [0, 1], ...}) of the paper row `name`; UserError for an unknown one."""
  if name not in PAPER_ROWS:
    raise UserError(f"paper_row='{name}' is not a known paper row; choose one of "
                    f"{', '.join(sorted(PAPER_ROWS))} or leave it empty")
  label, aus, f1 = PAPER_ROWS[name]
  return label, {f"AU{a}": v / 100 for a, v in zip(aus, f1)}
