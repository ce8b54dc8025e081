"""Set before JAX and TF start: four forced CPU devices, and a private tfds store for the test run
(SynthAU/tiny is generated into it once); and the finished tiny run that several test files read."""
import os
import tempfile

import pytest

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4").strip()
os.environ["JAX_PLATFORMS"] = "cpu"
# Tiny models: compiling dominates, and XLA's optimisation passes cost more than they save.
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="wsrtl_test_tfds_")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """(workdir, completed process) of one finished tiny supervised `train` (12 steps, checkpoints
  at 4, 8, 12), shared by the tests that read a finished run; copy it before changing it."""
  from tests.helpers import cli_args, run_cli
  workdir = tmp_path_factory.mktemp("tiny_run") / "run"
  result = run_cli(cli_args("train", workdir))
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, result
