"""Linear probes on frozen features (pure JAX, no data I/O): BatchNorm + linear, as TCAE's linear
evaluation does, trained with Adam on mini-batches of the features."""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class LinearProbe(nn.Module):
  """BatchNorm (no learned scale or shift) then one dense layer."""
  num_outputs: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, use_scale=False,
                     use_bias=False)(x)
    return nn.Dense(self.num_outputs)(x)


def fit_probe(features: np.ndarray, targets: np.ndarray, loss: Callable, num_outputs: int, *,
              steps: int, learning_rate: float, batch_size: int, seed: int,
              score: Callable | None = None, score_every: int = 50
              ) -> tuple[Callable, list[tuple[int, float]]]:
  """Trains a LinearProbe on `features` [N, D] to minimise `loss(outputs, targets)`; returns the
  probe as a function of features, and the history of `score(probe)` (higher is better), every
  `score_every` steps. With `score`, the probe returned is the one that scored best."""
  probe = LinearProbe(num_outputs)
  variables = probe.init(jax.random.key(seed), jnp.zeros((2, features.shape[1])))
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  opt_state = optimizer.init(variables["params"])

  @jax.jit
  def step(variables, opt_state, x, y):
    def objective(params):
      out, new = probe.apply({**variables, "params": params}, x, train=True,
                             mutable=["batch_stats"])
      return loss(out, y), new["batch_stats"]
    (_, stats), grads = jax.value_and_grad(objective, has_aux=True)(variables["params"])
    updates, opt_state = optimizer.update(grads, opt_state)
    return {"params": optax.apply_updates(variables["params"], updates),
            "batch_stats": stats}, opt_state

  apply = jax.jit(lambda variables, x: probe.apply(variables, x))
  as_function = lambda v: (lambda x: np.asarray(apply(v, jnp.asarray(x))))
  rng = np.random.default_rng(seed)
  best, history = (variables, -np.inf), []
  batch_size = min(batch_size, len(features))
  for i in range(1, steps + 1):
    rows = rng.choice(len(features), batch_size, replace=False)
    variables, opt_state = step(variables, opt_state, features[rows], targets[rows])
    if score is not None and (i % score_every == 0 or i == steps):
      history.append((i, float(score(as_function(variables)))))
      if history[-1][1] > best[1]:
        best = (variables, history[-1][1])
  return as_function(best[0] if score is not None else variables), history


def split_by_sequence(identities: np.ndarray, sequences: np.ndarray) -> np.ndarray:
  """For the identity probe: 1 for the frames of each person's first sequence (to train on), 0
  for their other sequences (to test on), so that the probe must recognise people across
  sequences; -1 for people with one sequence (left out)."""
  split = np.full(len(identities), -1, np.int8)
  for person in np.unique(identities):
    rows = identities == person
    seqs = np.unique(sequences[rows])
    if len(seqs) > 1:
      split[rows] = sequences[rows] == seqs[0]
  return split
