"""Shared test set-up: a tiny config and running the CLI in a subprocess."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_OVERRIDES = {
    "data.name": "synthau/tiny", "data.image_size": 48, "data.num_val_subjects": 1,
    "data.shuffle_buffer": 64, "model.width": 8, "global_batch_size": 8,
    "num_train_steps": 12, "log_every": 2, "checkpoint_every": 4, "optim.warmup_steps": 2,
    "eval.batch_size": 16,
}


def tiny_config(**overrides):
  from configs import synthau_supervised
  from data_pipeline.config_loading import override_config
  merged = {**TINY_OVERRIDES, **overrides}
  return override_config(synthau_supervised.get_config(), {k: str(v) for k, v in merged.items()})


def cli_args(command, workdir=None, config="configs/synthau_supervised.py", **overrides):
  args = [sys.executable, "-m", "wsrtl_jax", command]
  if config:
    args += ["--config", config]
  if workdir:
    args += ["--workdir", str(workdir)]
  args += [f"--config.{k}={v}" for k, v in {**TINY_OVERRIDES, **overrides}.items()]
  return args


def run_cli(args, timeout=600, env=None, **kwargs):
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                        env=env or os.environ.copy(), **kwargs)

