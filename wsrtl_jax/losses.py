"""Losses. Each returns a (sum, count) pair so that a sharded step can form the global mean."""
from __future__ import annotations

import jax.numpy as jnp
import optax
import numpy as np


def weighted_bce_sum(logits: jnp.ndarray, labels: jnp.ndarray, au_weights: jnp.ndarray
                     ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Per-AU weighted binary cross-entropy; labels < 0 (unknown) are masked out.

  Returns the weighted loss summed over known (frame, AU) entries and the number of them.
  """
  known = (labels >= 0).astype(jnp.float32)
  targets = jnp.clip(labels, 0, 1).astype(jnp.float32)
  per_entry = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), targets)
  return jnp.sum(per_entry * au_weights * known), jnp.sum(known)


def inverse_positive_rate_weights(positives: np.ndarray, known: np.ndarray) -> np.ndarray:
  """ME-GraphAU's AU weights: 1 / positive rate, normalised to sum to the number of AUs.

  `positives` and `known` are per-AU counts over the training frames. An AU with no positive gets
  the largest finite weight rather than infinity.
  """
  rate = positives / np.maximum(known, 1)
  inverse = np.where(rate > 0, 1.0 / np.maximum(rate, 1e-12), 0.0)
  inverse = np.where(rate > 0, inverse, inverse.max() if inverse.max() > 0 else 1.0)
  return (inverse / inverse.sum() * len(positives)).astype(np.float32)
