"""`bench` prints one JSON line of step throughput and never imports TensorFlow;
benchmarks/device_run.sh runs every device measurement in one go."""
import json
import os
import sys

import pytest

from tests.helpers import ROOT, TINY_OVERRIDES, run_cli

WSRTL_TINY = {"wsrtl.pairs_batch_size": 8, "model.token_dim": 16, "model.relation_heads": 2,
              "wsrtl.flow.levels": 2}


@pytest.mark.parametrize("method", ["supervised", "wsrtl"])
def test_cpu_flop_count_matches_the_steps_own(method):
  """MFU on a GPU rests on the FLOPs counted on the CPU backend (GPU cost analysis leaves out
  cuDNN's convolutions): one device's share of the step must count as the step itself does."""
  import importlib
  from wsrtl_jax import bench, methods, parallel
  config = importlib.import_module(f"configs.synthau_{method}").get_config()
  config.model.width, config.data.image_size, config.global_batch_size = 8, 32, 8
  if method == "wsrtl":
    config.update_from_flattened_dict(WSRTL_TINY)
  step, state, batch = bench._step_state_batch(config, parallel.make_mesh(4))
  per_image = bench._flops(step.lower(state, batch).compile()) / (
      methods.images_per_step(config) // 4)
  assert per_image > 1e6
  assert bench.cpu_flops_per_image(config, devices=4) == pytest.approx(per_image, rel=0.02)


def test_bench_peer_times_the_same_step_in_pytorch():
  """Runs where PyTorch is installed (it is not a dependency of the project)."""
  pytest.importorskip("torch")
  overrides = [f"--config.{k}={v}" for k, v in TINY_OVERRIDES.items()]
  result = run_cli([sys.executable, "-m", "wsrtl_jax", "bench", "--peer", "--config",
                    "configs/synthau_supervised.py", "--steps", "2", *overrides])
  assert result.returncode == 0, result.stderr[-3000:]
  jax_line, peer, ratio = (json.loads(l) for l in result.stdout.strip().splitlines()[-3:])
  assert peer["framework"].startswith("pytorch")
  for key in ("backbone", "image_size", "dtype"):
    assert peer[key] == jax_line[key]
  assert peer["per_device_batch"] == jax_line["per_device_batch"] * jax_line["devices"]
  assert ratio["jax_over_pytorch"] == pytest.approx(
      jax_line["images_per_sec"] / peer["images_per_sec"], rel=0.01)


def test_device_run_script_on_cpu_with_tiny_sizes(tmp_path):
  """benchmarks/device_run.sh, the whole set of accelerator measurements, on tiny sizes and with
  TensorFlow made unimportable (the accelerator hosts have none)."""
  (tmp_path / "block").mkdir()
  (tmp_path / "block" / "sitecustomize.py").write_text(
      "import sys\nsys.modules['tensorflow'] = None  # Any TF import now fails.\n")
  env = {**os.environ, "DEVICE_RUN_SIZE": "tiny", "PYTHON": sys.executable,
         "PYTHONPATH": f"{tmp_path / 'block'}{os.pathsep}{ROOT}"}
  out = tmp_path / "out"
  result = run_cli(["benchmarks/device_run.sh", str(out)], env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  jobs = (out / "jobs.txt").read_text().splitlines()
  for job in ("supervised", "wsrtl", "clp", "sweep"):
    assert any(line.startswith(f"{job} exit 0 ") for line in jobs), (job, jobs)
  rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
  first = {}
  for row in rows:
    first.setdefault(row["job"], row)
  # Frames the student sees per device (4 forced devices): 4 labelled frames / 4; WSRTL adds the
  # pairs' first frames (4 / 4); CLP, 4 units of 2 clips of 4 frames over 4 devices.
  for job, per_device in (("supervised", 1), ("wsrtl", 2), ("clp", 8)):
    line = first[job]
    assert line["method"] == job
    assert line["devices"] == 4 and line["per_device_batch"] == per_device
    assert line["images_per_sec"] > 0
    assert abs(line["images_per_sec_per_device"] * 4 - line["images_per_sec"]) < 0.1
    assert line["step_ms"] > 0 and line["compile_s"] > 0
    assert line["flops_per_image"] > 1e6
    assert line["mfu"] is None  # No known peak for CPU.
  wsrtl = first["wsrtl"]  # The flow targets alone, timed on the same devices.
  assert 0 < wsrtl["flow_target_ms"] < wsrtl["step_ms"]
  assert wsrtl["flow_share"] == pytest.approx(  # Written to 4 decimals.
      wsrtl["flow_target_ms"] / wsrtl["step_ms"], rel=0.01, abs=5e-5)
  assert [(r["dtype"], r["per_device_batch"]) for r in rows if r["job"] == "sweep"] == [
      (d, b) for d in ("float32", "bfloat16") for b in (2, 4)]
  report = (out / "results.md").read_text()
  ratio = first["wsrtl"]["images_per_sec"] / first["supervised"]["images_per_sec"]
  assert f"- wsrtl over the supervised step: {ratio:.2f} (img/s)" in report
  assert report.count("| sweep | supervised | resnet18 | 32 |") == 4
  # The profile of the WSRTL step, reduced to where its time goes.
  profile = out / "wsrtl_profile"
  assert (profile / "step.hlo.txt").exists() and list(profile.rglob("*.trace.json.gz"))
  parts = {tuple(cell.strip() for cell in line.split("|")[1:3])
           for line in report.splitlines() if line.startswith("| ")}
  for part in [("forward", "backbone"), ("backward", "backbone"), ("forward", "inpaint_decoder"),
               ("forward", "relation"), ("no gradient", "flow targets")]:
    assert part in parts, part
  shares = [float(line.split("|")[4].strip().rstrip("%")) for line in report.splitlines()
            if line.startswith("| ") and line.split("|")[4].strip().endswith("%")
            and line.split("|")[1].strip() in ("forward", "backward", "no gradient", "-")]
  assert sum(shares) == pytest.approx(100, abs=1)
