"""Side-by-side results of several runs (their `eval.json`), as the papers lay them out."""
from __future__ import annotations

import json
import os

from wsrtl_jax import evaluation
from wsrtl_jax.errors import UserError


def load_results(workdirs: list[str]) -> dict[str, dict]:
  """{run name (the workdir's base name): its eval.json}; all runs must share the AUs."""
  results = {}
  for workdir in workdirs:
    path = os.path.join(workdir, "eval.json")
    if not os.path.isfile(path):
      raise UserError(f"'{path}' does not exist; train or evaluate '{workdir}' first")
    with open(path) as f:
      results[os.path.basename(os.path.normpath(workdir))] = json.load(f)
  au_sets = {tuple(r["per_au_f1"]) for r in results.values()}
  if len(au_sets) > 1:
    raise UserError(f"the runs label different AUs ({sorted(au_sets)}); report one dataset at a "
                    "time")
  return results


def _aus(results: dict[str, dict]) -> list[int]:
  return [int(name[2:]) for name in next(iter(results.values()))["per_au_f1"]]


def format_report(results: dict[str, dict]) -> str:
  """Per-AU F1 rows of every run (and the first run's all-positive chance), then avg F1, AUC and
  accuracy of each."""
  rows = {name: r["per_au_f1"] for name, r in results.items()}
  rows["all-positive (chance)"] = next(iter(results.values()))["chance_all_positive"]
  lines = [evaluation.format_f1_table(rows, _aus(results)), ""]
  width = max(len(n) for n in results)
  for name, r in results.items():
    lines.append(f"{name:<{width}}  avg F1 {100 * r['avg_f1']:.1f}  AUC {100 * r['auc']:.1f}  "
                 f"accuracy {100 * r['accuracy']:.1f}  ({r['dataset']} fold {r['fold']}, "
                 f"{r['split']}, step {r['step']})")
  return "\n".join(lines)


def markdown_report(results: dict[str, dict]) -> str:
  """The same as a markdown table (for docs/RESULTS.md)."""
  names = [f"AU{a}" for a in _aus(results)]
  lines = ["| run | " + " | ".join(names) + " | avg F1 | AUC |",
           "|---" * (len(names) + 3) + "|"]
  for run, r in results.items():
    cells = " | ".join(f"{100 * r['per_au_f1'][n]:.1f}" for n in names)
    lines.append(f"| {run} | {cells} | **{100 * r['avg_f1']:.1f}** | {100 * r['auc']:.1f} |")
  return "\n".join(lines)
