"""Faults and bad input as a hostile user makes them: a refused `train` leaves the workdir byte for
byte as it was, one run per workdir, a damaged checkpoint falls back to the one before, and every
bad value is a one-line error."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from data_pipeline.errors import UserError
from tests.helpers import ROOT, cli_args, run_cli, tiny_config
from tests.test_cli_errors import assert_one_line_error
from wsrtl_jax import config_checks
from wsrtl_jax.logging_utils import read_jsonl


def snapshot(workdir):
  """Every file below `workdir` and its bytes."""
  return {os.path.relpath(os.path.join(d, f), workdir): open(os.path.join(d, f), "rb").read()
          for d, _, files in os.walk(workdir) for f in files}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished tiny run (12 steps, checkpoints at 8 and 12 kept) and its outputs."""
  workdir = tmp_path_factory.mktemp("finished") / "run"
  result = run_cli(cli_args("train", workdir))
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


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


def test_a_damaged_latest_checkpoint_falls_back_and_resumes_exactly(finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished, workdir)
  _damage(workdir / "checkpoints" / "12")
  evaluate = run_cli(cli_args("evaluate", workdir, config=None)[:6] + ["--step", "12"])
  assert_one_line_error(evaluate, f"checkpoint {workdir}/checkpoints/12 cannot be restored")
  result = run_cli(cli_args("train", workdir))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "checkpoints/12 cannot be restored" in result.stdout
  assert f"Resumed from {workdir}/checkpoints step 8." in result.stdout
  strip = lambda rows: [(r["step"], r["loss"], r["learning_rate"]) for r in rows]
  assert strip(read_jsonl(workdir / "metrics.jsonl")) == strip(
      read_jsonl(finished / "metrics.jsonl"))
  ours, theirs = (json.loads((w / "eval.json").read_text()) for w in (workdir, finished))
  assert ours["per_au_f1"] == theirs["per_au_f1"] and ours["step"] == theirs["step"]


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
