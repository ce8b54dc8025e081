"""`bench` prints one JSON line of step throughput and never imports TensorFlow."""
import json
import sys

import pytest

from tests.helpers import TINY_OVERRIDES, run_cli

BLOCK_TF_AND_RUN = (
    "import runpy, sys; sys.modules['tensorflow'] = None; "  # Any TF import now fails.
    "sys.argv = ['wsrtl_jax'] + sys.argv[1:]; runpy.run_module('wsrtl_jax', run_name='__main__')")


WSRTL_TINY = {"wsrtl.pairs_batch_size": 8, "model.token_dim": 16, "model.relation_heads": 2,
              "wsrtl.flow.levels": 2}


CLP_TINY = {"global_batch_size": 4, "model.code_dim": 16, "clp.queue_size": 64}
EXTRA = {"supervised": ({}, 2), "wsrtl": (WSRTL_TINY, 4), "clp": (CLP_TINY, 8)}


@pytest.mark.parametrize("method", ["supervised", "wsrtl", "clp"])
def test_bench_without_tensorflow(method):
  extra, per_device = EXTRA[method]
  overrides = [f"--config.{k}={v}" for k, v in {**TINY_OVERRIDES, **extra}.items()]
  result = run_cli([sys.executable, "-c", BLOCK_TF_AND_RUN, "bench", "--config",
                    f"configs/synthau_{method}.py", "--steps", "2", *overrides])
  assert result.returncode == 0, result.stderr[-3000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert line["method"] == method
  # Frames the student sees per device: labelled (8 / 4), plus the pairs' first frames (8 / 4)
  # for WSRTL; for CLP, 4 units of 2 clips of 4 frames over 4 devices.
  assert line["devices"] == 4 and line["per_device_batch"] == per_device
  assert line["images_per_sec"] > 0
  assert abs(line["images_per_sec_per_device"] * 4 - line["images_per_sec"]) < 0.1
  assert line["step_ms"] > 0 and line["compile_s"] > 0
  assert line["flops_per_image"] > 1e6
  assert line["mfu"] is None  # No known peak for CPU.
  if method == "wsrtl":  # The flow targets alone, timed on the same devices.
    assert 0 < line["flow_target_ms"] < line["step_ms"]
    assert line["flow_share"] == pytest.approx(line["flow_target_ms"] / line["step_ms"], rel=0.01)


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


def test_bench_sweep_and_profile(tmp_path):
  overrides = [f"--config.{k}={v}" for k, v in TINY_OVERRIDES.items()]
  result = run_cli([sys.executable, "-m", "wsrtl_jax", "bench", "--sweep", "1,2", "--config",
                    "configs/synthau_supervised.py", "--steps", "1", *overrides])
  assert result.returncode == 0, result.stderr[-3000:]
  lines = [json.loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
  assert [(r["dtype"], r["per_device_batch"]) for r in lines] == [
      (d, b) for d in ("float32", "bfloat16") for b in (1, 2)]
  table = [l for l in result.stdout.splitlines() if l.startswith("| supervised | resnet18 |")]
  assert len(table) == 4
  trace = tmp_path / "trace"
  result = run_cli([sys.executable, "-m", "wsrtl_jax", "bench", "--profile", str(trace),
                    "--config", "configs/synthau_supervised.py", "--steps", "2", *overrides])
  assert result.returncode == 0, result.stderr[-3000:]
  assert list(trace.rglob("*.xplane.pb"))
