"""The device mesh, the sharded step wrapper, and placing host batches on the mesh."""
from __future__ import annotations

import collections
import itertools
from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from data_pipeline.errors import UserError

AXIS = "data"


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """1-D mesh over `num_devices` devices (0 = every device of every host)."""
  available = jax.device_count()
  n = num_devices or available
  if n > available:
    raise UserError(f"num_devices={num_devices} but only {available} devices are visible "
                     "(on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N)")
  if jax.process_count() > 1 and n != available:
    raise UserError("num_devices must be 0 (all) when running on several hosts")
  return jax.make_mesh((n,), (AXIS,), devices=jax.devices()[:n])


def shard_step(per_device_step: Callable, mesh: jax.sharding.Mesh, num_replicated: int = 1,
               num_sharded: int = 1) -> Callable:
  """jit(shard_map(step)): the first args replicated, the next sharded over `data`; the first
  argument (the train state) is donated. Outputs are replicated."""
  in_specs = (P(),) * num_replicated + (P(AXIS),) * num_sharded
  mapped = jax.shard_map(per_device_step, mesh=mesh, in_specs=in_specs, out_specs=P())
  return jax.jit(mapped, donate_argnums=0)


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Places a host pytree on every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def local_batch_size(global_size: int, name: str, mesh: jax.sharding.Mesh) -> int:
  """This host's share of the global batch `name` of `global_size` units; UserError unless it
  splits evenly over the mesh's devices."""
  if global_size % mesh.size:
    raise UserError(f"{name}={global_size} does not split evenly over {mesh.size} devices")
  return global_size // jax.process_count()


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def to_global_batch(local_batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict:
  """This process's share of the batch -> global arrays sharded over `data`."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def prefetch_to_mesh(batches: Iterable[dict], mesh: jax.sharding.Mesh, size: int = 2
                     ) -> Iterator[dict]:
  """Keeps `size` batches in flight to the devices so host-to-device copies overlap the step."""
  queue = collections.deque()
  batches = iter(batches)
  for batch in itertools.islice(batches, size):
    queue.append(to_global_batch(batch, mesh))
  while queue:
    yield queue.popleft()
    for batch in itertools.islice(batches, 1):
      queue.append(to_global_batch(batch, mesh))


def in_lockstep(batches: Iterable[dict], padding: dict) -> Iterator[dict]:
  """Yields until every host has run out; a host that ran out early yields `padding`, so every
  host makes the same number of collective calls (a finite pass, e.g. evaluation)."""
  batches = iter(batches)
  while True:
    batch = next(batches, None)
    if np.asarray(multihost_utils.process_allgather(np.array(batch is None))).all():
      return
    yield padding if batch is None else batch
