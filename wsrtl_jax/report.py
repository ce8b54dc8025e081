"""Side-by-side results of several runs (their `eval.json`), as the papers lay them out; repeats
of a run (other seeds) averaged into one row with their spread."""
from __future__ import annotations

import json
import os

import numpy as np

from data_pipeline.errors import UserError
from wsrtl_jax import metrics

# What an eval.json must hold to be reported.
REQUIRED = ("avg_f1", "auc", "accuracy", "per_au_f1", "chance_all_positive", "dataset", "fold",
            "split", "step")
# What repeats of one run must share: they differ only in their seed.
SHARED = ("dataset", "fold", "split", "protocol", "feature", "random_init")


def _load(workdir: str) -> dict:
  path = os.path.join(workdir, "eval.json")
  if not os.path.isfile(path):
    raise UserError(f"'{path}' does not exist; train or evaluate '{workdir}' first")
  try:
    with open(path) as f:
      result = json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f"'{path}' is not valid JSON ({e}); evaluate '{workdir}' again") from None
  missing = [k for k in REQUIRED if k not in result]
  if missing:
    raise UserError(f"'{path}' lacks {', '.join(missing)}; is it a `train`, `evaluate` or "
                    "`linear_eval` result?")
  scores = {k: result[k] for k in ("avg_f1", "auc", "accuracy")}
  per_au = result["per_au_f1"]
  scores.update({f"per_au_f1.{au}": v for au, v in per_au.items()} if isinstance(per_au, dict)
                else {"per_au_f1": per_au})
  bad = [f"{k}={v!r}" for k, v in scores.items()
         if isinstance(v, bool) or not isinstance(v, (int, float))]
  if bad:
    raise UserError(f"'{path}' holds non-numeric scores ({', '.join(bad)}); evaluate "
                    f"'{workdir}' again")
  return result


def _check_repeats(row: str, runs: list[dict]) -> None:
  """Raises UserError unless the runs of `row` are one run's repeats: the same AUs, data, split,
  protocol and feature, each with an identity probe or none."""
  for key in SHARED:
    if len({json.dumps(r.get(key)) for r in runs}) > 1:
      raise UserError(f"the repeats '{row}' differ in {key} "
                      f"({', '.join(sorted({str(r.get(key)) for r in runs}))}); join only runs "
                      "that differ in their seed")
  if len({tuple(r["per_au_f1"]) for r in runs}) > 1:
    raise UserError(f"the repeats '{row}' label different AUs; join runs of one dataset")
  if len({"identity_probe" in r for r in runs}) > 1:
    raise UserError(f"only some of the repeats '{row}' have an identity probe; join runs "
                    "evaluated alike")


def _mean_of(runs: list[dict]) -> dict:
  """The first run's eval.json with every score averaged over `runs`, and `spread`: the standard
  deviation over the runs of avg F1, AUC and the identity probe's accuracy."""
  scores = {"avg_f1": [r["avg_f1"] for r in runs], "auc": [r["auc"] for r in runs]}
  if "identity_probe" in runs[0]:
    scores["identity"] = [r["identity_probe"]["accuracy"] for r in runs]
  mean = dict(runs[0], runs=len(runs), avg_f1=float(np.mean(scores["avg_f1"])),
              auc=float(np.mean(scores["auc"])),
              accuracy=float(np.mean([r["accuracy"] for r in runs])),
              per_au_f1={au: float(np.mean([r["per_au_f1"][au] for r in runs]))
                         for au in runs[0]["per_au_f1"]},
              spread={k: float(np.std(v, ddof=1)) for k, v in scores.items()})
  if "identity" in scores:
    mean["identity_probe"] = dict(runs[0]["identity_probe"],
                                  accuracy=float(np.mean(scores["identity"])))
  return mean


def load_results(rows: list[str]) -> dict[str, dict]:
  """{row name: its eval.json} for rows given as a workdir, or as workdirs joined by commas (the
  repeats of one run, averaged; named after the first); all rows must share the AUs. A name
  already taken gets the row's workdirs added, so that no row hides another."""
  results = {}
  for row in rows:
    workdirs = [w for w in row.split(",") if w]
    if not workdirs:
      raise UserError(f"'{row}' names no workdir; give DIR or DIR,DIR,...")
    runs = [_load(w) for w in workdirs]
    name = _run_name(workdirs[0], runs[0])
    if len(runs) > 1:
      _check_repeats(row, runs)
      runs, name = [_mean_of(runs)], f"{name}, mean of {len(runs)}"
    results[f"{name} [{row}]" if name in results else name] = runs[0]
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


def _score(result: dict, key: str) -> str:
  """A score x 100, with its spread over repeats (+- standard deviation) where there is one."""
  value = (result["identity_probe"]["accuracy"] if key == "identity" else result[key])
  spread = result.get("spread", {}).get(key)
  return f"{100 * value:.1f}" + (f" ± {100 * spread:.1f}" if spread is not None else "")


def _identity(result: dict) -> str:
  return _score(result, "identity") if "identity_probe" in result else "-"


def _aus(results: dict[str, dict]) -> list[int]:
  return [int(name[2:]) for name in next(iter(results.values()))["per_au_f1"]]


def format_report(results: dict[str, dict]) -> str:
  """Per-AU F1 rows of every run (and the first run's all-positive chance), then avg F1, AUC and
  accuracy of each."""
  rows = {name: r["per_au_f1"] for name, r in results.items()}
  rows["all-positive (chance)"] = next(iter(results.values()))["chance_all_positive"]
  lines = [metrics.format_f1_table(rows, _aus(results)), ""]
  width = max(len(n) for n in results)
  for name, r in results.items():
    identity = (f"  identity probe {_identity(r)} (chance "
                f"{100 * r['identity_probe']['chance']:.1f})" if "identity_probe" in r else "")
    which = f"{r['runs']} runs" if "runs" in r else f"step {r['step']}"
    lines.append(f"{name:<{width}}  avg F1 {_score(r, 'avg_f1')}  AUC {_score(r, 'auc')}  "
                 f"accuracy {100 * r['accuracy']:.1f}{identity}  ({r['dataset']} fold "
                 f"{r['fold']}, {r['split']}, {which})")
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
    lines.append(f"| {run} | {cells} | **{_score(r, 'avg_f1')}** | {_score(r, 'auc')} |"
                 + (f" {_identity(r)} |" if probes else ""))
  return "\n".join(lines)
