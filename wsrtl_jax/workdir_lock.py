"""One run per workdir: an OS lock on `workdir/.lock` held for the run. A second run into the same
workdir is refused in one line naming the holder. The OS drops the lock when its process dies, so
the lock file a killed run leaves is taken over, with a line saying so."""
from __future__ import annotations

import fcntl
import os
import socket

from data_pipeline.errors import UserError

LOCK_FILE = ".lock"


class WorkdirLock:
  """Held from `acquire` to `release`; the file names the holder (pid and host)."""

  def __init__(self, workdir: str):
    self.workdir, self.path, self._fd = workdir, os.path.join(workdir, LOCK_FILE), None

  def acquire(self) -> "WorkdirLock":
    try:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise UserError(f"cannot write to workdir '{self.workdir}': {e.strerror or e}") from e
    holder = os.read(fd, 200).decode(errors="replace").strip()
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(fd)
      raise UserError(f"workdir '{self.workdir}' is in use by another run ({holder or 'unknown'}); "
                      "wait for it to end, or train into another --workdir") from None
    if holder:
      print(f"Taking over the lock of an earlier run of {self.workdir} ({holder}), which is no "
            "longer running.", flush=True)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    """Removes the lock file and drops the lock."""
    if self._fd is None:
      return
    try:
      os.unlink(self.path)
    except OSError:
      pass  # Removed by hand, or the workdir is gone: nothing left to release but the lock.
    os.close(self._fd)
    self._fd = None
