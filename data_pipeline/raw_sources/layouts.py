"""Which layout a dataset folder holds, and reading it into a `SourceIndex`."""
from __future__ import annotations

import collections
import os

from data_pipeline.au_sets import AU_SETS
from data_pipeline.errors import UserError
from data_pipeline.raw_sources.bp4d_raw import _read_bp4d_raw
from data_pipeline.raw_sources.common import _check_folder
from data_pipeline.raw_sources.disfa_raw import _read_disfa_raw
from data_pipeline.raw_sources.frames_csv import _read_frames_csv
from data_pipeline.raw_sources.lists import _list_files, _read_lists
from data_pipeline.raw_sources.records import DATASETS, Problem, SourceIndex


_RAW_MARKERS = {"bp4d": ("bp4d_raw", os.path.join("AUCoding", "AU_OCC")),
                "disfa": ("disfa_raw", "ActionUnit_Labels")}


def _detect_layout(dataset: str, root: str) -> str:
  if os.path.isfile(os.path.join(root, "frames.csv")):
    return "csv"
  if _list_files(root, dataset):
    return "lists"
  if dataset in _RAW_MARKERS and os.path.isdir(os.path.join(root, _RAW_MARKERS[dataset][1])):
    return _RAW_MARKERS[dataset][0]
  looked = ["frames.csv", f"list/{dataset.upper()}_{{train,test}}_img_path_fold<k>.txt"]
  if dataset in _RAW_MARKERS:
    looked.append(_RAW_MARKERS[dataset][1] + "/")
  other = [f"{marker}/ (a {name.upper()} layout)" for name, (_, marker) in _RAW_MARKERS.items()
           if name != dataset and os.path.isdir(os.path.join(root, marker))]
  found = f"; found only {', '.join(other)}" if other else ""
  raise UserError(f"no {dataset.upper()} layout in {root}: looked for {', '.join(looked)}{found}")


_READERS = {"csv": _read_frames_csv, "lists": _read_lists,
            "bp4d_raw": lambda dataset, root: _read_bp4d_raw(root),
            "disfa_raw": lambda dataset, root: _read_disfa_raw(root)}


def _no_frames_error(root: str, layout: str, problems: list[Problem]) -> UserError:
  if not problems:
    return UserError(f"no labelled frame in {root} ({layout} layout): its label files are empty")
  cost = collections.Counter()
  for p in problems:
    cost[p.reason] += p.frames
  reason = cost.most_common(1)[0][0]
  example = next(p for p in problems if p.reason == reason)
  return UserError(f"no usable frame in {root} ({layout} layout): {len(problems)} problems, most "
                   f"frames lost to '{reason}', e.g. {example.path}: {example.message}")


def discover(dataset: str, manual_dir: str) -> SourceIndex:
  """Finds the layout of `manual_dir` and reads every label and landmark file of `dataset`
  ("bp4d", "disfa" or "gft"). Per-file faults are listed in `problems`; raises UserError if the
  folder is missing, holds no known layout, or yields no usable frame."""
  if dataset not in DATASETS:
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
  root = _check_folder(manual_dir, "manual_dir")
  layout = _detect_layout(dataset, root)
  sequences, groups, problems = _READERS[layout](dataset, root)
  sequences = sorted((s for s in sequences if s.frames), key=lambda s: s.sequence)
  if not sequences:
    raise _no_frames_error(root, layout, problems)
  subjects = {s.subject for s in sequences}
  return SourceIndex(layout=layout, aus=AU_SETS[dataset], sequences=sequences,
                     subject_group={s: g for s, g in sorted(groups.items()) if s in subjects},
                     problems=problems)
