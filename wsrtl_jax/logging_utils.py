"""Run outputs at the edge: metrics.jsonl and TensorBoard summaries."""
from __future__ import annotations

import json
import os
from typing import Any

import tensorboardX


class MetricsLog:
  """Appends one JSON object per logged step to `workdir/filename`, mirrored to TensorBoard.

  On resume, rows past the restored step (written after the last checkpoint) are dropped, so an
  interrupted run ends with the same rows as an uninterrupted one.
  """

  def __init__(self, workdir: str, filename: str, resume_step: int, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, filename)
    self._tb = None
    if not enabled:
      return
    rows = read_jsonl(self.path)
    with open(self.path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in rows if r["step"] <= resume_step)
    self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"),
                                          filename_suffix="." + filename.split(".")[0])

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    for k, v in metrics.items():
      self._tb.add_scalar(k, float(v), int(step))
    self._tb.flush()


def read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
