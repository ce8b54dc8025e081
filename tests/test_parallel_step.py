"""The per-device train step: same result under shard_map and pmap, on 1 and 4 devices."""
import jax
import numpy as np
import pytest

from configs import synthau_supervised
from wsrtl_jax import models, parallel, train_state
from wsrtl_jax.methods import supervised

NUM_AUS = 5


def tiny_config():
  config = synthau_supervised.get_config()
  config.model.width = 8
  config.data.image_size = 32
  config.global_batch_size = 8
  config.num_train_steps = 10
  config.optim.warmup_steps = 2
  return config


def make_step_and_state(config):
  model = models.build_model(config, NUM_AUS)
  optimizer = train_state.make_optimizer(config)
  step = supervised.make_train_step(model, optimizer, train_state.learning_rate_schedule(config),
                                    np.linspace(0.5, 1.5, NUM_AUS).astype(np.float32),
                                    config.data.image_size)
  size = config.data.image_size
  state = train_state.init_train_state(model, optimizer, (size, size, 3), config.seed)
  return step, state


def batches(config, n):
  rng = np.random.default_rng(0)
  s, b = config.data.image_size, config.global_batch_size
  for _ in range(n):
    labels = rng.integers(0, 2, (b, NUM_AUS)).astype(np.int32)
    labels[rng.random((b, NUM_AUS)) < 0.2] = -1  # Unknown labels must be masked.
    jitter = np.stack([rng.uniform(-20, 20, b), rng.uniform(0.8, 1.2, b),
                       rng.uniform(0.8, 1.2, b)], axis=1).astype(np.float32)
    yield {"image": rng.integers(0, 256, (b, s + 8, s + 8, 3), dtype=np.uint8), "label": labels,
           "flip": rng.random(b) < 0.5, "jitter": jitter}


def run_sharded(config, num_devices, num_steps=3):
  step, state = make_step_and_state(config)
  mesh = parallel.make_mesh(num_devices)
  sharded = parallel.shard_step(step, mesh)
  state = parallel.replicate(state, mesh)
  losses = []
  for batch in batches(config, num_steps):
    state, metrics = sharded(state, parallel.to_global_batch(batch, mesh))
    losses.append((float(metrics["loss"]), float(metrics["grad_norm"])))
  return losses, jax.device_get(state)


def flat(tree):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def assert_same_training(initial, a, b, tolerance=0.02):
  """a and b agree to within `tolerance` of how far training moved the parameters.

  Adam turns float-rounding noise in near-zero gradients into lr-sized steps, so elementwise
  tolerances on parameters are meaningless after a few steps; the relative distance is not.
  """
  moved = np.linalg.norm(flat(a) - flat(initial))
  assert moved > 0
  assert np.linalg.norm(flat(a) - flat(b)) / moved < tolerance


def test_one_and_four_devices_agree():
  config = tiny_config()
  _, initial = make_step_and_state(config)
  losses_1, state_1 = run_sharded(config, 1)
  losses_4, state_4 = run_sharded(config, 4)
  # Loss and gradient norm: the gradient is that of the global batch, not summed once per device.
  np.testing.assert_allclose(losses_1, losses_4, rtol=1e-4)
  assert_same_training(initial.params, state_1.params, state_4.params)
  assert_same_training(initial.batch_stats, state_1.batch_stats, state_4.batch_stats)


def test_shard_map_and_pmap_agree():
  config = tiny_config()
  losses_sm, state_sm = run_sharded(config, 4)
  step, state = make_step_and_state(config)
  initial = state
  pmapped = jax.pmap(step, axis_name=parallel.AXIS, donate_argnums=0)
  state = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 4), state)
  losses_pm = []
  for batch in batches(config, 3):
    state, metrics = pmapped(state, jax.tree.map(lambda x: x.reshape(4, -1, *x.shape[1:]), batch))
    losses_pm.append((float(metrics["loss"][0]), float(metrics["grad_norm"][0])))
  np.testing.assert_allclose(losses_sm, losses_pm, rtol=1e-4)
  assert_same_training(initial.params, state_sm.params, jax.tree.map(lambda x: x[0], state.params))


def test_too_many_devices_is_a_clear_error():
  with pytest.raises(Exception, match="num_devices=64 but only 4 devices"):
    parallel.make_mesh(64)
