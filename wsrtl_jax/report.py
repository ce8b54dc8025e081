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
      result = json.load(f)
    results[_run_name(workdir, result)] = result
  au_sets = {tuple(r["per_au_f1"]) for r in results.values()}
  if len(au_sets) > 1:
    raise UserError(f"the runs label different AUs ({sorted(au_sets)}); report one dataset at a "
                    "time")
  return results


def _run_name(workdir: str, result: dict) -> str:
  """The workdir's base name; for a linear evaluation, the pretraining run's, with the protocol."""
  if result.get("protocol") != "linear":
    return os.path.basename(os.path.normpath(workdir))
  what = "random init, linear" if result["random_init"] else "linear"
  return f"{os.path.basename(result['pretrained'])} ({what})"


def _identity(result: dict) -> str:
  probe = result.get("identity_probe")
  return f"{100 * probe['accuracy']:.1f}" if probe else "-"


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
    identity = (f"  identity probe {_identity(r)} (chance "
                f"{100 * r['identity_probe']['chance']:.1f})" if "identity_probe" in r else "")
    lines.append(f"{name:<{width}}  avg F1 {100 * r['avg_f1']:.1f}  AUC {100 * r['auc']:.1f}  "
                 f"accuracy {100 * r['accuracy']:.1f}{identity}  ({r['dataset']} fold "
                 f"{r['fold']}, {r['split']}, step {r['step']})")
  return "\n".join(lines)


def markdown_report(results: dict[str, dict]) -> str:
  """The same as a markdown table (for docs/RESULTS.md); linear evaluations add the identity
  probe's accuracy."""
  names = [f"AU{a}" for a in _aus(results)]
  probes = any("identity_probe" in r for r in results.values())
  extra = " identity probe |" if probes else ""
  lines = ["| run | " + " | ".join(names) + " | avg F1 | AUC |" + extra,
           "|---" * (len(names) + 3 + probes) + "|"]
  for run, r in results.items():
    cells = " | ".join(f"{100 * r['per_au_f1'][n]:.1f}" for n in names)
    lines.append(f"| {run} | {cells} | **{100 * r['avg_f1']:.1f}** | {100 * r['auc']:.1f} |"
                 + (f" {_identity(r)} |" if probes else ""))
  return "\n".join(lines)
