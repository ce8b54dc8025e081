"""Run outputs at the edge: metrics.jsonl and TensorBoard summaries."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import tensorboardX

from data_pipeline.errors import UserError


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
    if os.path.exists(self.path):
      kept = [r for r in rows if r["step"] <= resume_step]
      write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
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


def write_atomic(path: str, text: str) -> None:
  """Writes `path` anew through a temporary file, so a full disk cannot leave it half-written."""
  tmp = f"{path}.tmp"
  try:
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except OSError as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise UserError(f"cannot write '{path}': {e.strerror or e}") from None


def check_writable(path: str) -> None:
  """UserError unless `path` can be written (checked by opening it to append, which a
  read-only file system refuses even to root), so a long job fails before, not after, its work."""
  existed = os.path.exists(path)
  try:
    with open(path, "a"):
      pass
  except OSError as e:
    raise UserError(f"cannot write '{path}': {e.strerror or e}; nothing was done") from None
  if not existed:
    os.remove(path)


def read_jsonl(path: str) -> list[dict]:
  """The rows of a JSON-lines log; a half-written last row (a run killed mid-write) is dropped
  with a line saying so, any other unreadable row is a UserError naming the file and line."""
  if not os.path.exists(path):
    return []
  try:
    with open(path, encoding="utf-8") as f:
      lines = [(n, line) for n, line in enumerate(f, 1) if line.strip()]
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f"cannot read '{path}': {e}") from None
  rows = []
  for n, line in lines:
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      if n != lines[-1][0]:
        raise UserError(f"'{path}' line {n} is not JSON; remove that line") from None
      print(f"warning: '{path}' line {n} is half-written; dropped", file=sys.stderr, flush=True)
  return rows
