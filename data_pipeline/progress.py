"""Progress of long work on a terminal or in a log: a bar with rate and ETA."""
from __future__ import annotations

import sys
import time


class Progress:
  """A one-line bar with rate and ETA on a terminal; otherwise the caller's periodic lines."""

  def __init__(self, total: int, start: int, enabled: bool = True, unit: str = "step"):
    self.total, self.start, self.t0, self.unit = total, start, time.time(), unit
    self.tty = enabled and sys.stderr.isatty()
    self.text = ""

  def eta(self, step: int) -> tuple[float, float]:
    """(steps per second, seconds left) since this run started."""
    elapsed = max(time.time() - self.t0, 1e-9)
    rate = (step - self.start) / elapsed
    return rate, (self.total - step) / rate if rate > 0 else float("inf")

  def update(self, step: int, text: str = "") -> None:
    """Redraws the bar; `text` (e.g. the latest loss) stays until replaced."""
    if not self.tty:
      return
    self.text = text or self.text
    rate, left = self.eta(step)
    done = int(30 * step / max(self.total, 1))
    sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {step}/{self.total} "
                     f"{rate:.2f} {self.unit}/s ETA {format_seconds(left)} {self.text}   ")
    sys.stderr.flush()

  def line(self, step: int, text: str) -> str:
    rate, left = self.eta(step)
    return (f"{self.unit} {step}/{self.total} {text} | {rate:.2f} {self.unit}/s, "
            f"ETA {format_seconds(left)}")

  def print(self, text: str, file=None) -> None:
    """A line of its own (on stdout, or `file`), above the bar on a terminal."""
    if self.tty:
      sys.stderr.write("\r\033[K")
    print(text, file=file, flush=True)

  def close(self) -> None:
    if self.tty:
      sys.stderr.write("\n")


def format_seconds(seconds: float) -> str:
  if seconds == float("inf"):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
