"""Two CPU processes with two devices each train exactly like one process with four."""
import json
import os
import socket
import subprocess
import sys

from tests.helpers import ROOT, cli_args, run_cli


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
  steps = {"num_train_steps": 6, "checkpoint_every": 6}
  single = tmp_path / "one_process"
  result = run_cli(cli_args("train", single, **steps))
  assert result.returncode == 0, result.stderr[-3000:]

  multi = tmp_path / "two_processes"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  port = _free_port()
  processes = [
      subprocess.Popen(cli_args("train", multi, **steps) + [
          "--distributed", "--coordinator", f"127.0.0.1:{port}", "--num_processes", "2",
          "--process_id", str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (out, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  assert "avg F1" in outputs[0][0] and "avg F1" not in outputs[1][0]  # Only process 0 reports.

  compare = run_cli([sys.executable, "-m", "wsrtl_jax", "compare", str(single), str(multi)])
  assert compare.returncode == 0, compare.stderr[-2000:]
  diff = json.loads(compare.stdout.strip().splitlines()[-1])
  assert diff["steps_compared"] == 3
  assert diff["max_abs_loss_diff"] < 1e-3, diff
  assert diff["max_abs_param_diff"] < 1e-2, diff
  single_eval = json.loads((single / "eval.json").read_text())
  multi_eval = json.loads((multi / "eval.json").read_text())
  assert multi_eval["num_frames"] == single_eval["num_frames"]  # Every test frame, once.
