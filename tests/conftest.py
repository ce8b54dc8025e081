"""Set before JAX and TF start: four forced CPU devices, and a private tfds store for the test run
(SynthAU/tiny is generated into it once)."""
import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4").strip()
os.environ["JAX_PLATFORMS"] = "cpu"
# Tiny models: compiling dominates, and XLA's optimisation passes cost more than they save.
os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["TFDS_DATA_DIR"] = tempfile.mkdtemp(prefix="wsrtl_test_tfds_")
