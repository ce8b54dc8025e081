"""Times the compiled, sharded train step on synthetic device batches (no TensorFlow here)."""
from __future__ import annotations

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
from data_pipeline.config_loading import apply_override, lookup
from data_pipeline.errors import UserError
from wsrtl_jax import methods, parallel, train_state

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
  """XLA's FLOP count of a compiled program (per device)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older jax returns one dict per program.
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0))


def synthetic_batch(config: ml_collections.ConfigDict, num_aus: int, seed: int = 0) -> dict:
  """A host batch of the shapes `config.method`'s step consumes."""
  return methods.get_method(config).synthetic_batch(config, num_aus,
                                                    np.random.default_rng(seed))


def _time(fn, args, steps: int, warmup: int) -> float:
  """Seconds per call of compiled `fn(*args)`, after `warmup` calls."""
  for _ in range(warmup):
    out = fn(*args)
  jax.block_until_ready(out)
  t0 = time.perf_counter()
  for _ in range(steps):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / steps


def _step_state_batch(config: ml_collections.ConfigDict, mesh) -> tuple:
  """The sharded train step of `config.method` on `mesh`, its state and a synthetic batch."""
  method = methods.get_method(config)
  for key in method.batch_keys:  # UserError unless each splits over the devices.
    parallel.local_batch_size(lookup(config, key), key, mesh)
  # A method without labels reads none (and its unlabelled corpora name no AUs).
  num_aus = len(aus_of(config.data.name)) if method.has_labels else 0
  model, optimizer, state = method.create(config, num_aus)
  schedule = train_state.learning_rate_schedule(config)
  step = parallel.shard_step(
      method.make_step(config, model, optimizer, schedule, jnp.ones(num_aus)), mesh)
  batch = parallel.to_global_batch(synthetic_batch(config, num_aus, config.seed), mesh)
  return step, parallel.replicate(state, mesh), batch


def cpu_flops_per_image(config: ml_collections.ConfigDict, devices: int) -> float:
  """FLOPs per image of one device's share of the step, as XLA counts them on the CPU backend:
  the arithmetic is the backend's own, but GPU cost analysis leaves out the convolutions that
  cuDNN runs (0.4 GFLOP per ResNet-50 image at 224 on an H100, against 24 on CPU)."""
  share = config.copy_and_resolve_references()
  for key in methods.get_method(config).batch_keys:
    apply_override(share, key, str(lookup(share, key) // devices))
  mesh = jax.make_mesh((1,), (parallel.AXIS,), devices=jax.local_devices(backend="cpu")[:1])
  step, state, batch = _step_state_batch(share, mesh)
  return _flops(step.lower(state, batch).compile()) / methods.images_per_step(share)


PROFILE_STEPS = 3  # Steps traced after the timed ones (benchmarks/profile_table.py reads them).


def benchmark(config: ml_collections.ConfigDict, steps: int = 20, warmup: int = 3,
              profile_dir: str | None = None) -> dict:
  """Compiles the train step of `config.method` once, then times `steps` steps on a fixed
  synthetic batch, and adds the method's own figures (`Method.bench_extras`: WSRTL's flow targets
  alone and their share of the step). With `profile_dir`, PROFILE_STEPS more steps are traced
  into it after the timing (so the profiler does not slow the timed steps), beside the compiled
  step's HLO (`step.hlo.txt`) and the number of steps traced (`traced_steps.txt`)."""
  mesh = parallel.make_mesh(config.num_devices)
  size = config.data.image_size
  step, state, batch = _step_state_batch(config, mesh)

  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  images = methods.images_per_step(config)
  per_device_images = images // mesh.size
  flops_per_image = (_flops(compiled) / per_device_images if jax.default_backend() == "cpu"
                     else cpu_flops_per_image(config, mesh.size))

  for _ in range(warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  step_s = (time.perf_counter() - t0) / steps
  if profile_dir:
    folder = pathlib.Path(profile_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "step.hlo.txt").write_text(compiled.as_text())
    (folder / "traced_steps.txt").write_text(f"{PROFILE_STEPS}\n")
    with jax.profiler.trace(profile_dir):
      for _ in range(PROFILE_STEPS):
        state, metrics = compiled(state, batch)
      jax.block_until_ready((state, metrics))
  memory = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")

  images_per_sec = images / step_s
  peak = peak_flops(jax.devices()[0], config.model.dtype)
  per_device = images_per_sec / mesh.size
  result = {
      "method": methods.method_of(config),
      "backbone": config.model.backbone, "image_size": size, "dtype": config.model.dtype,
      "device_kind": jax.devices()[0].device_kind, "devices": mesh.size,
      "per_device_batch": per_device_images, "images_per_sec": round(images_per_sec, 2),
      "images_per_sec_per_device": round(per_device, 2), "step_ms": round(1e3 * step_s, 3),
      "compile_s": round(compile_s, 2), "flops_per_image": flops_per_image,
      "mfu": round(flops_per_image * per_device / peak, 4) if peak else None,
      "peak_memory_bytes": memory,  # None where the backend does not report it (CPU).
  }
  timer = lambda fn, args: _time(fn, args, steps, warmup)
  result.update(methods.get_method(config).bench_extras(config, batch, mesh, step_s, timer))
  return result


SWEEP_BATCHES = (8, 16, 32, 64)
SWEEP_DTYPES = ("float32", "bfloat16")


def sweep(config: ml_collections.ConfigDict, steps: int,
          batches: tuple[int, ...] = SWEEP_BATCHES) -> list[dict]:
  """`benchmark` over per-device batch sizes and compute dtypes (one compile each)."""
  devices = parallel.make_mesh(config.num_devices).size
  results = []
  for dtype in SWEEP_DTYPES:
    for per_device in batches:
      c = config.copy_and_resolve_references()
      c.model.dtype, c.global_batch_size = dtype, per_device * devices
      results.append(benchmark(c, steps=steps))
      print(json.dumps(results[-1]), flush=True)
  return results


def markdown_table(results: list[dict]) -> str:
  """The sweep as the table docs/PERFORMANCE.md shows."""
  lines = ["| method | backbone | size | dtype | devices | batch/device | img/s | img/s/device | "
           "step ms | GFLOP/img | MFU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in results:
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
    lines.append(f"| {r['method']} | {r['backbone']} | {r['image_size']} | {r['dtype']} | "
                 f"{r['devices']} | {r['per_device_batch']} | {r['images_per_sec']:.1f} | "
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
