"""The markdown report of a `benchmarks/device_run.sh OUT` run: one table of every step it timed,
the ratios that matter (WSRTL and CLP against the supervised step, JAX against the PyTorch peer),
the jobs that failed or were skipped, and the WSRTL step's per-op profile table.

  python benchmarks/device_report.py OUT
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import profile_table  # noqa: E402


def _cell(value, fmt: str) -> str:
  return "-" if value is None else format(value, fmt)


def report(out: str) -> str:
  path = os.path.join(out, "results.jsonl")
  rows = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
  steps = [r for r in rows if "images_per_sec" in r]
  lines = ["| job | step | backbone | size | dtype | devices | batch/device | img/s | step ms | "
           "GFLOP/img | MFU | peak memory GB | compile s |",
           "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  for r in steps:
    memory = r.get("peak_memory_bytes")
    flops = r.get("flops_per_image")
    lines.append(
        f"| {r['job']} | {r.get('method', r.get('framework'))} | {r['backbone']} | "
        f"{r['image_size']} | {r['dtype']} | {r['devices']} | {r['per_device_batch']} | "
        f"{r['images_per_sec']:,.1f} | {r['step_ms']:.1f} | "
        f"{_cell(flops and flops / 1e9, '.2f')} | {_cell(r.get('mfu'), '.1%')} | "
        f"{_cell(memory and memory / 1e9, '.1f')} | {_cell(r.get('compile_s'), '.0f')} |")
  first = {r["job"]: r for r in reversed(steps)}
  base = first.get("supervised")
  lines.append("")
  for job in ("wsrtl", "clp", "peer"):
    if base and job in first:
      label = "supervised (JAX) over the PyTorch peer" if job == "peer" else \
          f"{job} over the supervised step"
      ratio = (base["images_per_sec"] / first[job]["images_per_sec"] if job == "peer"
               else first[job]["images_per_sec"] / base["images_per_sec"])
      lines.append(f"- {label}: {ratio:.2f} (img/s)")
  if "wsrtl" in first and "flow_share" in first["wsrtl"]:
    lines.append(f"- WSRTL's flow targets: {first['wsrtl']['flow_target_ms']:.1f} ms, "
                 f"{first['wsrtl']['flow_share']:.1%} of its step")
  jobs = os.path.join(out, "jobs.txt")
  for line in open(jobs).read().splitlines() if os.path.exists(jobs) else []:
    if " exit 0 " not in line:
      lines.append(f"- {line}")
  profile = os.path.join(out, "wsrtl_profile")
  if os.path.isdir(profile):
    lines += ["", "WSRTL step profile:", "",
              profile_table.table(profile)]
  return "\n".join(lines)


if __name__ == "__main__":
  print(report(sys.argv[1]))
