"""A paper's table in one command: every fold x seed of a config trained into `DIR/fold{k}_seed{s}`
(each resumable, a finished one skipped), then the per-AU F1 of each fold (mean over seeds), the
mean over folds with the standard deviation over seeds, and the paper's row beside it
(`DIR/protocol.json`, `DIR/protocol.md`, `DIR/protocol_per_au_f1.png`)."""
from __future__ import annotations

import json
import os
from typing import Sequence

import jax
import ml_collections
import numpy as np

from data_pipeline.errors import UserError
from wsrtl_jax import logging_utils, methods, metrics, paper_rows, plots


def run_dir(workdir: str, fold: int, seed: int) -> str:
  return os.path.join(workdir, f"fold{fold}_seed{seed}")


def parse_ints(text: str, flag: str) -> tuple[int, ...]:
  """'1,2,3' -> (1, 2, 3); UserError naming `flag` for anything else."""
  try:
    values = tuple(int(v) for v in text.split(","))
  except ValueError:
    raise UserError(f"{flag} takes integers joined by commas such as 1,2,3; got '{text}'") from None
  if len(set(values)) != len(values):
    raise UserError(f"{flag} lists a value twice: '{text}'")
  return values


def _finished(directory: str) -> dict | None:
  """The run's eval.json if it has one (the run ended and its test fold was scored)."""
  path = os.path.join(directory, "eval.json")
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None  # Half written by a stopped evaluation: train resumes and evaluates again.


def train_all(config: ml_collections.ConfigDict, workdir: str, folds: Sequence[int],
              seeds: Sequence[int]) -> dict[tuple[int, int], dict] | None:
  """{(fold, seed): eval.json} of every run, training those not finished; None if SIGTERM
  stopped one (rerun the same command to resume)."""
  from wsrtl_jax import train
  if not methods.get_method(config).has_labels:
    raise UserError(f"protocol trains on labels and scores the test folds; method "
                    f"'{methods.method_of(config)}' has no labels (probe it with linear_eval)")
  results, total = {}, len(folds) * len(seeds)
  for fold in folds:
    for seed in seeds:
      directory = run_dir(workdir, fold, seed)
      run_config = ml_collections.ConfigDict(config.to_dict())
      run_config.data.fold, run_config.seed = fold, seed
      done = _finished(directory)
      changed = done is not None and train.config_changes(directory, run_config)
      if changed:
        raise UserError(f"'{directory}' finished with other settings ({', '.join(changed)}); "
                        "give the protocol a new --workdir")
      if done is not None:
        print(f"[{len(results) + 1}/{total}] {directory}: finished, skipped", flush=True)
      else:
        print(f"[{len(results) + 1}/{total}] {directory}: training fold {fold}, seed {seed}",
              flush=True)
        done = train.train_and_evaluate(run_config, directory)
        if done is None:
          return None
      results[(fold, seed)] = done
  return results


def summarize(results: dict[tuple[int, int], dict], paper: str = "") -> dict:
  """Per fold: per-AU F1, avg F1 and AUC averaged over seeds; overall: their mean over folds,
  with the standard deviation over seeds of each seed's mean over folds (0 for one seed)."""
  folds = sorted({f for f, _ in results})
  seeds = sorted({s for _, s in results})
  aus = list(next(iter(results.values()))["per_au_f1"])
  for key, r in results.items():
    if list(r["per_au_f1"]) != aus:
      raise UserError(f"fold{key[0]}_seed{key[1]} labels other AUs ({list(r['per_au_f1'])}) "
                      f"than the others ({aus})")
  # scores[name][fold index, seed index]
  scores = {name: np.array([[results[(f, s)]["per_au_f1"][name] if name in aus
                              else results[(f, s)][name] for s in seeds] for f in folds])
            for name in aus + ["avg_f1", "auc"]}
  spread = lambda v: float(np.std(v.mean(0), ddof=1)) if len(seeds) > 1 else 0.0
  summary = {
      "dataset": next(iter(results.values()))["dataset"], "folds": folds, "seeds": seeds,
      "per_fold": {str(f): {"per_au_f1": {n: float(scores[n][i].mean()) for n in aus},
                            "avg_f1": float(scores["avg_f1"][i].mean()),
                            "auc": float(scores["auc"][i].mean())} for i, f in enumerate(folds)},
      "per_au_f1": {n: float(scores[n].mean()) for n in aus},
      "per_au_f1_std_over_seeds": {n: spread(scores[n]) for n in aus},
      "avg_f1": float(scores["avg_f1"].mean()), "avg_f1_std_over_seeds": spread(scores["avg_f1"]),
      "auc": float(scores["auc"].mean()), "auc_std_over_seeds": spread(scores["auc"]),
  }
  if paper:
    label, row = paper_rows.paper_row(paper)
    summary["paper"] = {"name": paper, "label": label, "per_au_f1": row,
                        "avg_f1": float(np.mean(list(row.values())))}
  return summary


def _rows(summary: dict) -> dict[str, dict[str, float]]:
  seeds = len(summary["seeds"])
  rows = {f"fold {f}" + (f" (mean of {seeds} seeds)" if seeds > 1 else ""): r["per_au_f1"]
          for f, r in summary["per_fold"].items()}
  rows[f"mean of {len(summary['folds'])} folds"] = summary["per_au_f1"]
  if "paper" in summary:
    rows[summary["paper"]["label"]] = summary["paper"]["per_au_f1"]
  return rows


def format_summary(summary: dict) -> str:
  """The per-AU table (papers' layout), then avg F1 and AUC with their spread over seeds."""
  aus = [int(n[2:]) for n in summary["per_au_f1"]]
  seeds = summary["seeds"]
  spread = lambda key: (f" ± {100 * summary[key + '_std_over_seeds']:.1f} (std over seeds "
                        f"{','.join(map(str, seeds))})" if len(seeds) > 1 else "")
  return "\n".join([
      f"{summary['dataset']}, folds {','.join(map(str, summary['folds']))}, seeds "
      f"{','.join(map(str, seeds))}: per-AU F1 on each test fold", "",
      metrics.format_f1_table(_rows(summary), aus), "",
      f"avg F1 {100 * summary['avg_f1']:.1f}{spread('avg_f1')}  "
      f"AUC {100 * summary['auc']:.1f}{spread('auc')}"])


def markdown_summary(summary: dict) -> str:
  """The same table in markdown."""
  names = list(summary["per_au_f1"])
  lines = ["| | " + " | ".join(names) + " | avg |", "|---" * (len(names) + 2) + "|"]
  for row, per_au in _rows(summary).items():
    cells = [per_au.get(n) for n in names]
    known = [c for c in cells if c is not None]
    lines.append(f"| {row} | " + " | ".join("-" if c is None else f"{100 * c:.1f}"
                                            for c in cells)
                 + f" | **{100 * np.mean(known):.1f}** |")
  if len(summary["seeds"]) > 1:
    lines += ["", f"avg F1 {100 * summary['avg_f1']:.1f} ± "
              f"{100 * summary['avg_f1_std_over_seeds']:.1f}, AUC {100 * summary['auc']:.1f} ± "
              f"{100 * summary['auc_std_over_seeds']:.1f} (std over seeds)"]
  return "\n".join(lines)


def run_protocol(config: ml_collections.ConfigDict, workdir: str, folds: Sequence[int],
                 seeds: Sequence[int]) -> dict | None:
  """Trains what is missing, writes and prints the protocol's table; None if stopped."""
  results = train_all(config, workdir, folds, seeds)
  if results is None:
    return None
  summary = summarize(results, config.get("paper_row", ""))
  if jax.process_index() == 0:
    logging_utils.write_atomic(os.path.join(workdir, "protocol.json"),
                               json.dumps(summary, indent=2))
    logging_utils.write_atomic(os.path.join(workdir, "protocol.md"),
                               markdown_summary(summary) + "\n")
    plots.plot_per_au_rows(_rows(summary), os.path.join(workdir, "protocol_per_au_f1.png"),
                           f"{summary['dataset']}: per-AU F1 on the test folds")
    print("\n" + format_summary(summary) + f"\n-> {os.path.join(workdir, 'protocol.md')}",
          flush=True)
  return summary
