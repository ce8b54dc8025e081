"""The `train` / `evaluate` / `compare` commands end to end on SynthAU/tiny."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import ROOT, cli_args, run_cli
from wsrtl_jax.logging_utils import read_jsonl


@pytest.fixture(scope="module")
def uninterrupted(tiny_run):
  return tiny_run


def test_train_writes_every_output(uninterrupted):
  workdir, result = uninterrupted
  config = json.loads((workdir / "config.json").read_text())
  assert config["data"]["name"] == "synthau/tiny" and config["model"]["width"] == 8
  rows = read_jsonl(workdir / "metrics.jsonl")
  assert [r["step"] for r in rows] == list(range(2, 13, 2))
  assert all({"loss", "learning_rate", "images_per_sec"} <= r.keys() for r in rows)
  assert os.listdir(workdir / "tensorboard")
  result_json = json.loads((workdir / "eval.json").read_text())
  assert set(result_json["per_au_f1"]) == {f"AU{a}" for a in
                                           (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)}
  for key in ("avg_f1", "accuracy", "auc"):
    assert 0.0 <= result_json[key] <= 1.0
  assert result_json["split"] == "test"
  validation = read_jsonl(workdir / "validation.jsonl")
  assert [r["step"] for r in validation] == [4, 8, 12]
  best = max(validation, key=lambda r: (r["val_avg_f1"], r["step"]))
  assert result_json["step"] == best["step"]  # Chosen on validation, never on the test fold.
  assert "all-positive (chance)" in result.stdout and "avg F1" in result.stdout
  for png in ("training_curves.png", "eval_per_au_f1.png"):
    with Image.open(workdir / png) as image:
      assert image.format == "PNG" and image.size[0] > 500


def test_evaluate_reproduces_eval_json(uninterrupted, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted[0], workdir)
  before = json.loads((workdir / "eval.json").read_text())
  result = run_cli(cli_args("evaluate", workdir, config=None)[:6])  # No overrides.
  assert result.returncode == 0, result.stderr[-3000:]
  after = json.loads((workdir / "eval.json").read_text())
  assert after["per_au_f1"] == pytest.approx(before["per_au_f1"])
  assert after["step"] == before["step"]


def test_one_and_four_devices_give_the_same_run(tmp_path):
  runs = {}
  for n in (1, 4):
    runs[n] = tmp_path / f"devices{n}"
    result = run_cli(cli_args("train", runs[n], num_devices=n, num_train_steps=6,
                              checkpoint_every=6))
    assert result.returncode == 0, result.stderr[-3000:]
  compare = run_cli([sys.executable, "-m", "wsrtl_jax", "compare", str(runs[1]), str(runs[4])])
  diff = json.loads(compare.stdout.strip().splitlines()[-1])
  assert diff["steps_compared"] == 3
  assert diff["max_abs_loss_diff"] < 1e-3, diff
  assert diff["max_abs_param_diff"] < 1e-2, diff  # Adam turns rounding noise into lr-sized steps; see test_parallel_step.


def test_a_second_sigterm_ends_a_run_that_never_reaches_a_step_boundary():
  code = ("import os, signal, time\n"
          "from wsrtl_jax.preemption import PreemptionWatch\n"
          "watch = PreemptionWatch(check_every=1)\n"
          "os.kill(os.getpid(), signal.SIGTERM)\n"
          "print('deferred', watch.should_stop(0), flush=True)\n"
          "os.kill(os.getpid(), signal.SIGTERM)\n"
          "time.sleep(60)\n"
          "print('still running', flush=True)\n")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=60)
  assert done.stdout.split() == ["deferred", "True"]
  assert done.returncode == -signal.SIGTERM
