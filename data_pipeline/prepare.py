"""`python -m wsrtl_jax prepare`: build the tfds stores of a dataset from the user's copy, then
say what went in and what was left out.

Stopping and rerunning is safe: aligned sequences are cached one file each (written atomically),
tfds writes a config's store under a temporary name and renames it when complete, and a store
that is already complete is left alone.
"""
from __future__ import annotations

import os

import tensorflow_datasets as tfds

from data_pipeline import aligned_cache
from data_pipeline.errors import EmptySplitError, UserError

MANUAL = ("bp4d", "disfa", "gft", "face_videos")


def _register() -> None:
  from data_pipeline import face_datasets  # noqa: F401  Registers the builders.
  import data_pipeline.synthau.synthau_dataset_builder  # noqa: F401


def _config_names(dataset: str) -> tuple[str, list[str]]:
  name, _, config = dataset.partition("/")
  if name not in MANUAL + ("synthau",):
    raise UserError(f"--dataset {dataset!r}: expected one of {', '.join(MANUAL + ('synthau',))}, "
                    "optionally with a config (e.g. bp4d/fold1)")
  known = [c.name for c in tfds.builder_cls(name).BUILDER_CONFIGS]
  if config and config not in known:
    raise UserError(f"--dataset {dataset!r}: {name} has configs {', '.join(known)}")
  return name, [config] if config else known


def _check_manual_dir(name: str, manual_dir: str | None) -> None:
  if name == "synthau":
    return
  if not manual_dir:
    raise UserError(f"prepare --dataset {name} needs --manual_dir DIR, the folder holding your "
                    f"copy of {name}")
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    raise UserError(f"--manual_dir {manual_dir!r} does not exist, is not a folder or is empty: "
                    f"expected the folder holding your copy of {name}")


def prepare(dataset: str, manual_dir: str | None, data_dir: str | None) -> dict:
  """Builds every config of `dataset` (or just the one named, e.g. `bp4d/fold2`) and returns
  the summary. A config that would have an empty split (say a fold whose test subjects lost
  every frame) is reported in the summary's `failed` and the others are built; when none can be,
  the error is raised."""
  _register()
  name, configs = _config_names(dataset)
  _check_manual_dir(name, manual_dir)
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
  builders, failed = [], {}
  for config in configs:
    builder = tfds.builder(f"{name}/{config}", data_dir=data_dir)
    if builder.is_prepared():
      print(f"{name}/{config}: already prepared in {builder.data_dir}", flush=True)
    else:
      print(f"{name}/{config}: preparing", flush=True)
      try:
        builder.download_and_prepare(download_config=download_config)
      except EmptySplitError as e:
        print(e, flush=True)
        failed[f"{name}/{config}"] = str(e)
        continue
    builders.append(builder)
  if not builders:
    raise UserError("; ".join(failed.values()))
  return {**summarize(name, builders), "failed": failed}


def summarize(name: str, builders: list) -> dict:
  """The store's summary (written by the builder: subjects, sequences, frames, positives per AU,
  frames without landmarks, frames skipped and why, subjects without frames) and, per config,
  the frames and the subjects of each split."""
  splits = {f"{name}/{b.builder_config.name}": {s: b.info.splits[s].num_examples
                                                for s in b.info.splits} for b in builders}
  subjects = {f"{name}/{b.builder_config.name}": b.info.metadata.get("split_subjects", {})
              for b in builders}
  return {"dataset": name, "splits": splits, "split_subjects": subjects,
          **builders[0].info.metadata.get("summary", {})}


def _split_line(split: str, frames: int, subjects: list[str] | None) -> str:
  """"validation 5 frames of 1 subject (F001)"; training subjects are counted, not named."""
  if subjects is None:  # A store prepared before subjects were recorded.
    return f"{split} {frames} frames"
  named = f" ({', '.join(subjects)})" if split != "train" else ""
  return (f"{split} {frames} frames of {len(subjects)} subject"
          f"{'s' if len(subjects) != 1 else ''}{named}")


def format_summary(summary: dict) -> str:
  lines = [f"{summary['dataset']}: {summary.get('subjects', '?')} subjects, "
           f"{summary.get('sequences', '?')} sequences, {summary.get('frames', '?')} frames"]
  for config, sizes in summary["splits"].items():
    subjects = summary.get("split_subjects", {}).get(config, {})
    lines.append(f"  {config}: " + ", ".join(_split_line(s, n, subjects.get(s))
                                             for s, n in sizes.items()))
  for error in summary.get("failed", {}).values():
    lines.append(f"  {error}")
  if summary.get("positives_per_au"):
    lines.append("  positives per AU: " + " ".join(
        f"{au}={n}" for au, n in summary["positives_per_au"].items()))
    lines.append("  unknown labels per AU: " + " ".join(
        f"{au}={n}" for au, n in summary["unknown_per_au"].items()))
  if "frames_without_landmarks" in summary:
    lines.append("  frames without landmarks: " + ", ".join(
        f"{n} {how}" for how, n in summary["frames_without_landmarks"].items()) +
        " (neighbour: borrowed from a frame nearby; detected: template in the face box)")
    skipped = summary["frames_skipped"]
    lines.append("  frames skipped: " + (", ".join(f"{n} {why}" for why, n in skipped.items())
                                          if skipped else "none"))
  lost = summary.get("subjects_without_frames", {})
  if lost:
    lines.append(f"  subjects without frames: {aligned_cache.describe_lost(lost)}")
  for problem in summary.get("problems", []):
    lines.append(f"  problem: {problem}")
  return "\n".join(lines)
