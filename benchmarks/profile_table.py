"""A per-op time table of the train step from a `bench --profile DIR` trace: where the step's
device time goes, by part of the network and by pass (forward with gradient, backward, without
gradient: the teacher and the flow targets), then the slowest ops. Reads the trace's JSON
(`plugins/profile/*/*.trace.json.gz`), the step's HLO for each op's source (`step.hlo.txt`) and
the number of steps traced (`traced_steps.txt`), which `bench --profile DIR` writes; the standard
library only.

  python benchmarks/profile_table.py DIR [--top 15]
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re

_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%?([\w.\-]+) = ")
_SOURCE = re.compile(r'op_name="([^"]*)"')
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OUTSIDE = "(outside the network: losses, optimizer, data ops)"
_UNNAMED = "(no source in the HLO: layout copies, kernel reversals)"
# Scopes that JAX's transformations and control flow add to a source path, not parts of a model.
_WRAPPERS = ("shard_map", "while", "body", "cond", "closed_call", "remat", "checkpoint")


def op_sources(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> the JAX source path of its op (metadata op_name); a fusion or call
  without one takes that of the computation it calls (its root's, else its first op's)."""
  sources, calls, computation_source = {}, {}, {}
  computation, root = None, False
  for line in hlo_text.splitlines():
    header = _COMPUTATION.match(line)
    if header:
      computation = header.group(1)
      continue
    match = _INSTRUCTION.match(line)
    if not match:
      continue
    name, source = match.group(1), _SOURCE.search(line)
    if source:
      sources[name] = source.group(1)
      root = line.lstrip().startswith("ROOT ")
      if root or computation not in computation_source:
        computation_source[computation] = source.group(1)
    elif _CALLS.search(line):
      calls[name] = _CALLS.search(line).group(1)
  for name, callee in calls.items():
    if callee in computation_source:
      sources.setdefault(name, computation_source[callee])
  return sources


def part_of(op_name: str) -> tuple[str, str]:
  """(pass, part) of an op from its source path, e.g. ("backward", "backbone"): the first flax
  module under the model's class (and its method), or what the op is outside the network."""
  if not op_name:
    return "-", _UNNAMED
  components = op_name.split("/")
  if "flow_targets" in components:  # wsrtl.flow_target's scope, TV-L1 (estimate_flow) included.
    return "no gradient", "flow targets"
  kind = ("backward" if any("transpose(" in c for c in components)
          else "forward" if any("jvp(" in c for c in components) else "no gradient")
  scopes = [c for c in components[:-1]
            if not re.match(r"^\(?\w+\(", c) and not set(":<,>") & set(c)
            and c not in _WRAPPERS]
  while scopes and re.match(r"^[A-Z][A-Za-z0-9]*(\.\w+)?$", scopes[0]):
    scopes.pop(0)  # The model's class, and the method called (WSRTLNet, WSRTLNet._encode).
  return kind, scopes[0] if scopes else _OUTSIDE


def _trace_file(directory: str) -> str:
  files = sorted(glob.glob(os.path.join(directory, "plugins", "profile", "*", "*.trace.json.gz")),
                 key=os.path.getmtime)
  if not files:
    raise SystemExit(f"no trace under {directory}/plugins/profile: expected the folder given "
                     "to bench --profile")
  return files[-1]


def self_times(events: list[dict]) -> dict[str, float]:
  """Device microseconds per HLO op, each event's own time (nested events' time taken out, so a
  while loop is not counted twice), from the "XLA Ops" line where the trace has one (GPU, TPU),
  else from every thread (CPU)."""
  threads = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  ops = [e for e in events if e.get("ph") == "X" and "hlo_op" in (e.get("args") or {})]
  op_lines = [e for e in ops if threads.get((e["pid"], e.get("tid"))) == "XLA Ops"]
  by_thread = collections.defaultdict(list)
  for e in op_lines or ops:
    by_thread[(e["pid"], e.get("tid"))].append(e)
  totals: dict[str, float] = collections.Counter()
  for line in by_thread.values():
    line.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack: list[list] = []  # [end, op, own time] of the events open at this point.
    for e in line + [None]:
      while stack and (e is None or e["ts"] >= stack[-1][0]):
        _, op, own = stack.pop()
        totals[op] += max(0.0, own)
      if e is not None:
        if stack:
          stack[-1][2] -= e["dur"]
        stack.append([e["ts"] + e["dur"], e["args"]["hlo_op"], e["dur"]])
  return dict(totals)


def table(directory: str, top: int = 15) -> str:
  """The markdown tables for the trace in `directory`."""
  with gzip.open(_trace_file(directory), "rt") as f:
    events = json.load(f)["traceEvents"]
  with open(os.path.join(directory, "traced_steps.txt")) as f:
    steps = int(f.read())
  with open(os.path.join(directory, "step.hlo.txt")) as f:
    sources = op_sources(f.read())
  times = self_times(events)
  total = sum(times.values()) or 1.0
  parts: dict[tuple[str, str], float] = collections.Counter()
  for op, us in times.items():
    parts[part_of(sources.get(op, ""))] += us
  lines = [f"Device time per step, all devices together: {total / steps / 1e3:.2f} ms over "
           f"{len(times)} ops ({steps} steps traced).", "",
           "| pass | part | ms per step | share |", "|---|---|---:|---:|"]
  for (kind, part), us in sorted(parts.items(), key=lambda kv: -kv[1]):
    lines.append(f"| {kind} | {part} | {us / steps / 1e3:.3f} | {us / total:.1%} |")
  lines += ["", "| op | ms per step | share | source |", "|---|---:|---:|---|"]
  for op, us in sorted(times.items(), key=lambda kv: -kv[1])[:top]:
    source = sources.get(op, "").replace("|", "/")
    lines.append(f"| {op} | {us / steps / 1e3:.3f} | {us / total:.1%} | {source} |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("directory", help="the folder given to bench --profile")
  parser.add_argument("--top", type=int, default=15, help="slowest ops listed")
  args = parser.parse_args(argv)
  print(table(args.directory, args.top))


if __name__ == "__main__":
  main()
