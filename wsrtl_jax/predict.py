"""`predict`: a trained run's AU predictions for the user's images, folders of images and videos,
one CSV per input (and an AU timeline PNG per video).

The host finds, tracks and aligns faces in a thread of its own while the devices run the network
on fixed-size batches of faces (one compilation), so decoding and detection overlap the network.
Nothing here imports TensorFlow: a trained workdir is all it needs.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import queue
import sys
import threading
import time
from typing import Iterator

import jax
import numpy as np

from data_pipeline.au_sets import CENTRE_AUS
from data_pipeline.errors import UserError
from data_pipeline.progress import Progress, format_seconds
from wsrtl_jax import face_geometry, logging_utils, methods, parallel, plots, pretrained
from wsrtl_jax.evaluate import make_predict_fn
from wsrtl_jax.predict_inputs import Frame, Input, discover, frames, num_frames

SUMMARY_FILE = "predict.json"


def au_columns(aus) -> list[str]:
  """Per AU its probability, then per AU its 0/1 decision, named as OpenFace names AUs."""
  return [f"AU{au:02d}_prob" for au in aus] + [f"AU{au:02d}_pred" for au in aus]


def header(inp: Input, aus) -> list[str]:
  """The CSV columns of `inp`: videos carry a timestamp, images their file."""
  where = ["timestamp"] if inp.is_video else ["file"]
  return (["frame"] + where + ["face_found", "face_x", "face_y", "face_w", "face_h"]
          + au_columns(aus))


class _InputOut:
  """One input's CSV, written beside its final name and moved there once complete (an earlier
  CSV of the same name stays whole until then), and a video's timeline."""

  def __init__(self, inp: Input, out_dir: str, aus, threshold: float):
    self.inp, self.aus, self.threshold = inp, aus, threshold
    self.path = os.path.join(out_dir, f"{inp.name}.csv")
    self._file = open(f"{self.path}.tmp", "w", newline="")
    self._csv = csv.writer(self._file)
    self._csv.writerow(header(inp, aus))
    self.seconds, self.probabilities = [], []

  def write(self, frame: Frame, probabilities: np.ndarray | None) -> None:
    where = f"{frame.timestamp:.3f}" if self.inp.is_video else frame.file
    if probabilities is None:
      face = ["0", "", "", "", ""] + [""] * (2 * len(self.aus))
    else:
      face = (["1"] + [f"{v:.1f}" for v in frame.box] + [f"{p:.4f}" for p in probabilities]
              + [str(int(p >= self.threshold)) for p in probabilities])
    self._csv.writerow([frame.frame, where] + face)
    if self.inp.is_video:
      self.seconds.append(frame.timestamp)
      self.probabilities.append(np.full(len(self.aus), np.nan) if probabilities is None
                                else probabilities)

  def close(self, run_name: str) -> list[str]:
    """Moves the CSV into place; draws a video's timeline. The paths written."""
    self._file.close()
    os.replace(f"{self.path}.tmp", self.path)
    if not self.inp.is_video:
      return [self.path]
    timeline = os.path.join(os.path.dirname(self.path), f"{self.inp.name}_timeline.png")
    plots.plot_au_timeline(np.array(self.seconds), np.array(self.probabilities), self.aus,
                           self.threshold, timeline, f"{self.inp.path}: AU probabilities "
                           f"({run_name}); no face where blank")
    return [self.path, timeline]

  def discard(self) -> None:
    self._file.close()
    os.remove(f"{self.path}.tmp")


@dataclasses.dataclass
class _Timing:
  host: float = 0.0  # The host thread's decoding, detection and alignment.
  waiting: float = 0.0  # The network's side waiting for the host's next frame.
  network: float = 0.0  # The network's side dispatching batches and waiting for results.
  writing: float = 0.0  # Writing the CSVs and drawing the timelines.


_DONE = object()


def _host_thread(stream: Iterator[Frame], out: queue.Queue, timing: _Timing) -> None:
  """Puts every frame of `stream` on `out`, then _DONE (or the exception that stopped it)."""
  try:
    start = time.perf_counter()
    for frame in stream:
      timing.host += time.perf_counter() - start
      out.put(frame)
      start = time.perf_counter()
    out.put(_DONE)
  except BaseException as e:  # Re-raised on the main thread.
    out.put(e)


def _received(frames_in: queue.Queue, timing: _Timing) -> Iterator[Frame]:
  while True:
    start = time.perf_counter()
    item = frames_in.get()
    timing.waiting += time.perf_counter() - start
    if item is _DONE:
      return
    if isinstance(item, BaseException):
      raise item
    yield item


def _load(workdir: str):
  """(config, model, state, step, geometry) of the run, its best-on-validation checkpoint."""
  geometry = face_geometry.read(workdir)
  config, model, state, step = pretrained.load_run(workdir, best=True)
  if not methods.get_method(config).has_labels:
    raise UserError(f"'{workdir}' is a {config.get('method')} pretraining run, which predicts "
                    "no AUs; predict with a run trained on AU labels (supervised or wsrtl)")
  return config, model, state, step, geometry


def predict(workdir: str, paths: list[str], out_dir: str) -> dict:
  """Writes OUT/<input>.csv (and _timeline.png for videos) for each of `paths`, and a summary
  (OUT/predict.json: frames, frames per second, the host's and the network's shares of the
  time). Unreadable inputs or images are reported on stderr as they come; the others are still
  processed, and a UserError at the end says how many failed."""
  inputs = discover(paths)
  config, model, state, step, geometry = _load(workdir)
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot write to --out '{out_dir}': {e.strerror or e}") from None
  logging_utils.check_writable(os.path.join(out_dir, SUMMARY_FILE))
  mesh = parallel.make_mesh()
  batch_size = math.ceil(config.eval.batch_size / mesh.size) * mesh.size
  crop = face_geometry.FaceCropper.for_run(geometry, config.data)
  network = make_predict_fn(model, config.data.image_size)
  state = parallel.replicate(state, mesh)

  def dispatch(batch: list[Frame]):
    """Starts the network on `batch`, padded to `batch_size` (fresh arrays: a batch in flight
    may still be reading the last ones)."""
    images = np.zeros((batch_size, crop.crop, crop.crop, 3), np.uint8)
    centres = np.zeros((batch_size, len(CENTRE_AUS), 2, 2), np.float32)
    for i, frame in enumerate(batch):
      images[i], centres[i] = frame.crop, frame.au_centres
    g = parallel.to_global_batch({"image": images, "au_centres": centres}, mesh)
    return network(state, g["image"], g["au_centres"])

  start = time.perf_counter()
  np.asarray(dispatch([]))  # Compiles before the clock of the frames starts.
  compile_seconds = time.perf_counter() - start
  run_name = f"{os.path.basename(os.path.normpath(workdir))} step {step}"
  outs: dict[int, _InputOut] = {}
  failed: set[int] = set()
  written: list[str] = []
  counts = {"frames": 0, "faces": 0}
  progress = Progress(sum(num_frames(inp) for inp in inputs), 0, unit="frame")
  last_line = time.time()

  def finish(flight, final: bool = False) -> None:
    """Writes the rows of a dispatched batch's frames (and the faceless frames among them), in
    order, then closes the CSVs of the inputs that are complete: those before the last frame
    written (frames come in input order), or all when `final`."""
    nonlocal last_line
    output, pending, batch = flight
    t = time.perf_counter()
    probabilities = iter(np.asarray(output)[:len(batch)] if batch else ())
    t, timing.network = time.perf_counter(), timing.network + time.perf_counter() - t
    for frame in pending:
      outs[frame.input].write(frame, next(probabilities) if frame.crop is not None else None)
    counts["frames"] += len(pending)
    counts["faces"] += len(batch)
    for index in [i for i in outs if final or (pending and i < pending[-1].input)]:
      written.extend(outs.pop(index).close(run_name))
    timing.writing += time.perf_counter() - t
    progress.update(counts["frames"])
    if not progress.tty and time.time() - last_line > 30:
      progress.print(progress.line(counts["frames"], f"{counts['faces']} faces"))
      last_line = time.time()

  timing = _Timing()
  frames_in: queue.Queue = queue.Queue(maxsize=2 * batch_size)
  host = threading.Thread(target=_host_thread, daemon=True,
                          args=(frames(inputs, crop), frames_in, timing))
  start = time.perf_counter()
  host.start()
  in_flight, pending, batch = None, [], []
  try:
    for frame in _received(frames_in, timing):
      if frame.error:
        progress.print(f"error: {frame.error}", file=sys.stderr)
        failed.add(frame.input)
        continue
      if frame.input not in outs:
        outs[frame.input] = _InputOut(inputs[frame.input], out_dir, geometry.aus,
                                      config.eval.threshold)
      pending.append(frame)
      if frame.crop is not None:
        batch.append(frame)
      if len(batch) == batch_size:
        t = time.perf_counter()
        flight = (dispatch(batch), pending, batch)
        timing.network += time.perf_counter() - t
        if in_flight:
          finish(in_flight)
        in_flight, pending, batch = flight, [], []
    if in_flight:
      finish(in_flight)
    finish((dispatch(batch) if batch else None, pending, batch), final=True)
  except BaseException:
    for out in outs.values():
      out.discard()
    raise
  finally:
    progress.close()
  seconds = time.perf_counter() - start
  summary = {
      "workdir": workdir, "step": step, "inputs": len(inputs), "failed": len(failed),
      "frames": counts["frames"], "faces": counts["faces"], "batch_size": batch_size,
      "devices": mesh.size, "device": jax.devices()[0].device_kind,
      "compile_seconds": round(compile_seconds, 2), "seconds": round(seconds, 2),
      "frames_per_sec": round(counts["frames"] / max(seconds, 1e-9), 2),
      "host_share": round(timing.host / max(seconds, 1e-9), 3),
      "network_share": round(timing.network / max(seconds, 1e-9), 3),
      "writing_share": round(timing.writing / max(seconds, 1e-9), 3),
      "network_waiting_for_host_share": round(timing.waiting / max(seconds, 1e-9), 3)}
  logging_utils.write_atomic(os.path.join(out_dir, SUMMARY_FILE), json.dumps(summary, indent=2))
  print(format_summary(summary), flush=True)
  for path in written:
    print(f"  {path}", flush=True)
  if failed:
    raise UserError(f"{len(failed)} of {len(inputs)} inputs had files that could not be read "
                    f"(listed above: {', '.join(inputs[i].path for i in sorted(failed))}); the "
                    f"rest are in '{out_dir}'")
  return summary


def format_summary(summary: dict) -> str:
  return (f"{summary['frames']} frames ({summary['faces']} with a face) of {summary['inputs']} "
          f"inputs in {format_seconds(summary['seconds'])}: {summary['frames_per_sec']:.1f} "
          f"frames/s on {summary['devices']} x {summary['device']} (batches of "
          f"{summary['batch_size']}; compiled in {summary['compile_seconds']:.1f} s). Host "
          f"(decode, detect, align) busy {100 * summary['host_share']:.0f}% of the time, "
          f"network {100 * summary['network_share']:.0f}%, writing outputs "
          f"{100 * summary['writing_share']:.0f}%; the network waited for the host "
          f"{100 * summary['network_waiting_for_host_share']:.0f}% of the time.")
