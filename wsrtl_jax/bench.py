"""Times the compiled, sharded train step on synthetic device batches (no TensorFlow here)."""
from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data_pipeline.au_sets import aus_of
from wsrtl_jax import parallel, training
from wsrtl_jax.errors import UserError

# Dense peak FLOP/s per device for the compute dtype (bfloat16; float32 uses TF32 on NVIDIA).
PEAK_FLOPS = {
    "TPU v3": {"bfloat16": 123e12, "float32": 123e12},
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},
    "TPU v5p": {"bfloat16": 459e12, "float32": 459e12},
    "TPU v6 lite": {"bfloat16": 918e12, "float32": 918e12},
    "A100": {"bfloat16": 312e12, "float32": 156e12},
    "H100": {"bfloat16": 989e12, "float32": 495e12},
    "H200": {"bfloat16": 989e12, "float32": 495e12},
}


def peak_flops(device: jax.Device, dtype: str) -> float | None:
  """The device's peak for `dtype`, or None where it is not known (e.g. CPU)."""
  for name, peaks in PEAK_FLOPS.items():
    if name in device.device_kind:
      return peaks[dtype]
  return None


def _flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older jax returns one dict per program.
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0))


def benchmark(config: ml_collections.ConfigDict, steps: int = 20, warmup: int = 3,
              profile_dir: str | None = None) -> dict:
  """Compiles the train step once, then times `steps` steps on a fixed synthetic batch (traced
  for the profiler into `profile_dir` if given)."""
  mesh = parallel.make_mesh(config.num_devices)
  num_aus = len(aus_of(config.data.name))
  size = config.data.image_size
  model, optimizer, state = training.create(config, num_aus)
  state = parallel.replicate(state, mesh)
  schedule = training.learning_rate_schedule(config)
  step = parallel.shard_step(
      training.make_train_step(model, optimizer, schedule, jnp.ones(num_aus), size), mesh)
  rng = np.random.default_rng(config.seed)
  b = config.global_batch_size
  # Crops of the input size, as in the real-data protocol (crop 224 of 256, no resize).
  batch = parallel.to_global_batch({
      "image": rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8),
      "flip": np.arange(b) % 2 == 0,
      "label": rng.integers(0, 2, (b, num_aus), dtype=np.int32),
      "jitter": np.tile(np.float32([10.0, 1.1, 0.9]), (b, 1))}, mesh)

  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  per_device_batch = b // mesh.size
  flops_per_image = _flops(compiled) / per_device_batch  # cost_analysis is per device.

  for _ in range(warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  with jax.profiler.trace(profile_dir) if profile_dir else contextlib.nullcontext():
    t0 = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - t0) / steps
  memory = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")

  images_per_sec = b / step_s
  peak = peak_flops(jax.devices()[0], config.model.dtype)
  per_device = images_per_sec / mesh.size
  return {
      "backbone": config.model.backbone, "image_size": size, "dtype": config.model.dtype,
      "device_kind": jax.devices()[0].device_kind, "devices": mesh.size,
      "per_device_batch": per_device_batch, "images_per_sec": round(images_per_sec, 2),
      "images_per_sec_per_device": round(per_device, 2), "step_ms": round(1e3 * step_s, 3),
      "compile_s": round(compile_s, 2), "flops_per_image": flops_per_image,
      "mfu": round(flops_per_image * per_device / peak, 4) if peak else None,
      "peak_memory_bytes": memory,  # None where the backend does not report it (CPU).
  }


SWEEP_BATCHES = (8, 16, 32, 64)
SWEEP_DTYPES = ("float32", "bfloat16")


def sweep(config: ml_collections.ConfigDict, steps: int) -> list[dict]:
  """`benchmark` over per-device batch sizes and compute dtypes (one compile each)."""
  devices = parallel.make_mesh(config.num_devices).size
  results = []
  for dtype in SWEEP_DTYPES:
    for per_device in SWEEP_BATCHES:
      c = config.copy_and_resolve_references()
      c.model.dtype, c.global_batch_size = dtype, per_device * devices
      results.append(benchmark(c, steps=steps))
      print(json.dumps(results[-1]), flush=True)
  return results


def markdown_table(results: list[dict]) -> str:
  """The sweep as the table docs/PERFORMANCE.md shows."""
  lines = ["| backbone | size | dtype | devices | batch/device | img/s | img/s/device | step ms | "
           "GFLOP/img | MFU |", "|---|---|---|---|---|---|---|---|---|---|"]
  for r in results:
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
    lines.append(f"| {r['backbone']} | {r['image_size']} | {r['dtype']} | {r['devices']} | "
                 f"{r['per_device_batch']} | {r['images_per_sec']:.1f} | "
                 f"{r['images_per_sec_per_device']:.1f} | {r['step_ms']:.1f} | "
                 f"{r['flops_per_image'] / 1e9:.2f} | {mfu} |")
  return "\n".join(lines)


def pytorch_peer(config_file: str, overrides: dict[str, str], steps: int) -> dict:
  """Runs `benchmarks/torch_peer.py` (the same supervised step in PyTorch) in its own process,
  so the two frameworks never share a device, and returns its JSON line."""
  script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "torch_peer.py"
  args = [sys.executable, str(script), "--config", config_file, "--steps", str(steps)]
  args += [f"--config.{k}={v}" for k, v in overrides.items()]
  done = subprocess.run(args, capture_output=True, text=True)
  if done.returncode != 0:
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise UserError(f"the PyTorch peer failed ({last}); it needs `pip install torch`")
  return json.loads(done.stdout.strip().splitlines()[-1])
