"""Faults and bad input as a hostile user makes them: a refused `train` leaves the workdir byte for
byte as it was, one run per workdir, a damaged checkpoint falls back to the one before, and every
bad value is a one-line error."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from data_pipeline.errors import UserError
from tests.helpers import ROOT, cli_args, run_cli, tiny_config
from tests.test_cli_errors import assert_one_line_error
from wsrtl_jax import compare, config_checks
from wsrtl_jax.logging_utils import read_jsonl


def snapshot(workdir):
  """Every file below `workdir` and its bytes."""
  return {os.path.relpath(os.path.join(d, f), workdir): open(os.path.join(d, f), "rb").read()
          for d, _, files in os.walk(workdir) for f in files}


@pytest.fixture(scope="module")
def finished(tiny_run):
  """A finished tiny run (12 steps, checkpoints at 8 and 12 kept) and its outputs."""
  return tiny_run[0]


@pytest.mark.parametrize("key, value, expected", [
    ("global_batch_size", "0", "global_batch_size=0; expected an integer >= 1"),
    ("global_batch_size", "-8", "global_batch_size=-8; expected an integer >= 1"),
    ("checkpoint_every", "0", "checkpoint_every=0; expected an integer >= 1"),
    ("num_train_steps", "0", "num_train_steps=0; expected an integer >= 1"),
    ("data.label_fraction", "0", "data.label_fraction=0.0; expected a number in (0, 1]"),
    ("data.label_fraction", "1.5", "data.label_fraction=1.5; expected a number in (0, 1]"),
    ("optim.learning_rate", "-1", "optim.learning_rate=-1.0; expected a number > 0"),
])
def test_out_of_range_values_are_refused(key, value, expected):
  with pytest.raises(UserError, match=re.escape(expected)):
    config_checks.check_ranges(tiny_config(**{key: value}))


def test_an_out_of_range_value_is_one_line_and_writes_nothing(tmp_path):
  result = run_cli(cli_args("train", tmp_path / "w", **{"data.label_fraction": "0"}))
  assert_one_line_error(result, "data.label_fraction=0.0; expected a number in (0, 1]")
  assert not (tmp_path / "w").exists()


def test_a_refused_resume_leaves_the_workdir_as_it_was(finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  before = snapshot(workdir)
  result = run_cli(cli_args("train", workdir, **{"model.backbone": "resnet34"}))
  assert_one_line_error(result, "model.backbone ('resnet18' -> 'resnet34')", "another --workdir")
  assert snapshot(workdir) == before
  (workdir / "config.json").write_text('{"seed": 0, "data": {')  # Truncated.
  before = snapshot(workdir)
  result = run_cli(cli_args("train", workdir))
  assert_one_line_error(result, f"'{workdir}/config.json' cannot be read")
  assert snapshot(workdir) == before


def test_a_second_run_into_a_workdir_is_refused_and_a_dead_ones_lock_taken_over(finished,
                                                                                tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from wsrtl_jax.workdir_lock import WorkdirLock;"
       f" WorkdirLock({str(workdir)!r}).acquire(); print('held', flush=True); time.sleep(120)"],
      cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    before = snapshot(workdir)
    result = run_cli(cli_args("train", workdir))
    assert_one_line_error(result, f"workdir '{workdir}' is in use by another run (process "
                          f"{holder.pid} on")
    assert snapshot(workdir) == before
  finally:
    holder.kill()
    holder.wait()
  result = run_cli(cli_args("train", workdir))  # The holder died: its lock file is left.
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Taking over the lock of an earlier run of {workdir} (process {holder.pid}" in (
      result.stdout)
  assert not (workdir / ".lock").exists()


def _damage(checkpoint_dir):
  """Truncates every file of a checkpoint step's arrays to a third of its size."""
  for d, _, files in os.walk(checkpoint_dir / "default"):
    for f in files:
      path = os.path.join(d, f)
      with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 3)


def test_evaluate_of_a_damaged_step_is_one_line(finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  _damage(workdir / "checkpoints" / "12")
  evaluate = run_cli(cli_args("evaluate", workdir, config=None)[:6] + ["--step", "12"])
  assert_one_line_error(evaluate, f"checkpoint {workdir}/checkpoints/12 cannot be restored")


def test_evaluate_into_a_workdir_it_cannot_write_fails_before_evaluating(finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  (workdir / "eval_validation.json").mkdir()  # What cannot be written, even by root.
  result = run_cli(cli_args("evaluate", workdir, config=None)[:6] + ["--split", "validation"])
  assert_one_line_error(result, f"cannot write '{workdir}/eval_validation.json': Is a directory;"
                        " nothing was done")
  assert "avg F1" not in result.stdout


# Runs `train` with one fault, chosen by FAULT: `step:K` SIGKILLs the process a moment after it
# takes its K-th batch, `save:N` a moment after the save of step N has started, `full:N` limits
# the size of the files it writes from the save of step N on (as a full disk does), `eval` kills
# it once the final evaluation is computed, before eval.json is written. FAULT_SEED picks the
# moments.
FAULTY_TRAIN = """
import os, random, resource, signal, sys, threading
from wsrtl_jax import checkpointing, cli, evaluate, parallel
fault, rng = os.environ["FAULT"], random.Random(int(os.environ["FAULT_SEED"]))
kill = lambda: os.kill(os.getpid(), signal.SIGKILL)
kill_soon = lambda most: threading.Timer(rng.uniform(0, most), kill).start()
kind, _, at = fault.partition(":")
if kind == "step":
  prefetch = parallel.prefetch_to_mesh
  def counted(*args, **kwargs):
    for n, batch in enumerate(prefetch(*args, **kwargs), 1):
      if n == int(at):
        kill_soon(0.05)
      yield batch
  parallel.prefetch_to_mesh = counted
if kind in ("save", "full"):
  save = checkpointing.save
  def faulty_save(manager, step, *args):
    if kind == "full" and step == int(at):
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.RLIM_INFINITY))
    save(manager, step, *args)
    if kind == "save" and step == int(at):
      kill_soon(0.1)
  checkpointing.save = faulty_save
if kind == "eval":
  evaluate_split = evaluate.evaluate_split
  evaluate.evaluate_split = lambda *args, **kwargs: (evaluate_split(*args, **kwargs), kill())
cli.main()
"""


def _committed(workdir):
  return sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit())


@pytest.mark.parametrize("seed", [0])
def test_faults_at_random_moments_end_in_the_uninterrupted_run(finished, tmp_path, seed):
  """One run stopped six ways in turn, each resumed by the same command: SIGTERM during
  start-up, SIGKILL mid-step, a full disk at a save, SIGKILL mid-save, the latest checkpoint
  damaged, SIGKILL mid-evaluation. It ends with the parameters, metrics.jsonl and eval.json of
  the run that was never stopped."""
  rng = random.Random(seed)
  workdir = tmp_path / "run"
  args = cli_args("train", workdir)
  faulty = lambda fault: run_cli([sys.executable, "-c", FAULTY_TRAIN] + args[3:], env={
      **os.environ, "FAULT": fault, "FAULT_SEED": str(rng.randrange(1 << 30))})

  process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  time.sleep(rng.uniform(0.5, 3.0))  # Imports, data, model: nothing is trained yet.
  process.send_signal(signal.SIGTERM)
  out, err = process.communicate(timeout=300)
  assert process.returncode == 0, err[-3000:]
  assert "Stopped by SIGTERM at step 1; checkpoint saved" in out, out[-2000:]

  killed = faulty(f"step:{rng.randint(2, 5)}")
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

  full = faulty("full:8")
  assert_one_line_error(full, f"cannot write the checkpoint {workdir}/checkpoints/8 (File too "
                        "large); the last committed checkpoint is step 4")
  assert _committed(workdir)[-1] == 4

  killed = faulty(f"save:{rng.choice([8, 12])}")
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  _damage(workdir / "checkpoints" / str(_committed(workdir)[-1]))

  killed = faulty("eval")
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert "cannot be restored" in killed.stdout and not (workdir / "eval.json").exists()

  done = run_cli(args)
  assert done.returncode == 0, done.stderr[-3000:]
  strip = lambda rows: [(r["step"], r["loss"], r["learning_rate"]) for r in rows]
  assert strip(read_jsonl(workdir / "metrics.jsonl")) == strip(
      read_jsonl(finished / "metrics.jsonl"))
  assert read_jsonl(workdir / "validation.jsonl") == read_jsonl(finished / "validation.jsonl")
  diff = compare.compare_runs(str(finished), str(workdir))
  assert diff["max_abs_loss_diff"] == 0.0 and diff["max_abs_param_diff"] == 0.0
  ours, theirs = (json.loads((w / "eval.json").read_text()) for w in (workdir, finished))
  assert ours == theirs


def test_a_half_written_last_log_row_is_dropped_and_a_bad_one_named(tmp_path, capsys):
  log = tmp_path / "metrics.jsonl"
  log.write_text('{"step": 2, "loss": 1.0}\n{"step": 4, "lo')
  assert read_jsonl(log) == [{"step": 2, "loss": 1.0}]
  assert "line 2 is half-written; dropped" in capsys.readouterr().err
  log.write_text('{"step": 2\n{"step": 4, "loss": 1.0}\n')
  with pytest.raises(UserError, match="metrics.jsonl' line 1 is not JSON"):
    read_jsonl(log)


def test_compare_names_a_directory_that_is_not_a_run(finished, tmp_path):
  result = run_cli([sys.executable, "-m", "wsrtl_jax", "compare", str(finished),
                    str(tmp_path / "missing")])
  assert_one_line_error(result, f"'{tmp_path / 'missing'}' is not a training workdir")


def test_compare_refuses_runs_of_different_shapes(finished, tmp_path, monkeypatch):
  shapes = iter([(2,), (3,)])  # Two runs' latest parameters, of different widths.
  monkeypatch.setattr(compare, "_latest_state",
                      lambda workdir: (12, {"params": {"w": np.zeros(next(shapes))}}))
  with pytest.raises(UserError, match="train networks of different shapes"):
    compare.compare_runs(str(finished), str(finished))
