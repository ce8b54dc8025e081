"""Losses and AU metrics against hand-computed cases."""
import numpy as np
import pytest

from wsrtl_jax import losses, metrics


def test_weighted_bce_masks_unknown_labels_and_weights_aus():
  logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], np.float32)
  labels = np.array([[1, 0, -1], [0, -1, 1]], np.int32)
  weights = np.array([1.0, 2.0, 0.5], np.float32)
  total, count = losses.weighted_bce_sum(logits, labels, weights)
  bce = lambda z, y: np.log1p(np.exp(-z)) if y else np.log1p(np.exp(z))
  expected = 1.0 * bce(2.0, 1) + 2.0 * bce(-1.0, 0) + 1.0 * bce(0.0, 0) + 0.5 * bce(-2.0, 1)
  assert float(count) == 4
  assert float(total) == pytest.approx(expected, rel=1e-5)


def test_inverse_positive_rate_weights():
  w = losses.inverse_positive_rate_weights(np.array([10, 40, 0]), np.array([100, 100, 100]))
  # Rates 0.1 and 0.4 -> inverses 10 and 2.5; an AU without positives gets the largest (10).
  np.testing.assert_allclose(w, np.array([10, 2.5, 10]) / 22.5 * 3, rtol=1e-6)


def test_au_metrics_hand_computed():
  labels = np.array([[1, 0], [1, 1], [0, 1], [0, -1]])
  probs = np.array([[0.9, 0.2], [0.4, 0.7], [0.6, 0.1], [0.1, 0.9]])
  m = metrics.au_metrics(probs, labels, aus=(1, 2))
  # AU1: TP=1 FP=1 FN=1 -> F1 0.5. AU2 (3 known): TP=1 FP=0 FN=1 -> F1 2/3.
  assert m["per_au_f1"] == pytest.approx({"AU1": 0.5, "AU2": 2 / 3})
  assert m["avg_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
  assert m["per_au_accuracy"]["AU1"] == pytest.approx(0.5)
  # AU1 AUC: positives 0.9, 0.4 vs negatives 0.6, 0.1 -> 3 of 4 pairs ordered.
  assert m["per_au_auc"]["AU1"] == pytest.approx(0.75)
  assert m["per_au_auc"]["AU2"] == pytest.approx(0.5)


def test_auc_undefined_without_positives_is_null_and_left_out():
  m = metrics.au_metrics(np.array([[0.2, 0.9], [0.3, 0.1]]), np.array([[0, 1], [0, 0]]),
                            aus=(1, 2))
  assert m["per_au_auc"]["AU1"] is None
  assert m["auc"] == pytest.approx(1.0)


def test_table_has_one_row_per_method_and_the_average_last():
  table = metrics.format_f1_table({"ours": {"AU1": 0.5, "AU2": 0.7}}, aus=(1, 2))
  header, _, row = table.splitlines()
  assert header.split()[-1] == "avg" and row.split()[0] == "ours"
  assert row.split()[1:] == ["50.0", "70.0", "60.0"]
