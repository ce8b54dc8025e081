"""`report`: runs side by side, and repeats of a run (seeds) averaged into one row."""
import json

import numpy as np
import pytest

from wsrtl_jax import report
from wsrtl_jax.errors import UserError


def _write_linear_eval(path, pretrained, avg_f1, auc, identity, aus=("AU1", "AU2")):
  path.mkdir(parents=True)
  result = {"avg_f1": avg_f1, "auc": auc, "accuracy": 0.8, "per_au_f1": {a: avg_f1 for a in aus},
            "chance_all_positive": {a: 0.3 for a in aus}, "protocol": "linear",
            "random_init": False, "pretrained": str(pretrained), "dataset": "synthau/tiny",
            "fold": 1, "split": "test", "step": 100,
            "identity_probe": {"accuracy": identity, "chance": 0.25}}
  (path / "eval.json").write_text(json.dumps(result))
  return str(path)


def test_repeats_are_averaged_into_one_row_with_their_spread(tmp_path):
  seeds = [_write_linear_eval(tmp_path / f"clp_s{s}" / "linear_eval", tmp_path / f"clp_s{s}",
                              f1, auc, ident)
           for s, f1, auc, ident in ((0, 0.30, 0.56, 0.03), (1, 0.26, 0.50, 0.04),
                                     (2, 0.28, 0.53, 0.02))]
  single = _write_linear_eval(tmp_path / "moco" / "linear_eval", tmp_path / "moco", 0.25, 0.51,
                              0.05)
  results = report.load_results([",".join(seeds), single])

  assert list(results) == ["clp_s0 (linear), mean of 3", "moco (linear)"]
  mean = results["clp_s0 (linear), mean of 3"]
  assert mean["avg_f1"] == pytest.approx(0.28) and mean["auc"] == pytest.approx(0.53)
  assert mean["per_au_f1"]["AU2"] == pytest.approx(0.28)
  assert mean["identity_probe"]["accuracy"] == pytest.approx(0.03)
  assert mean["spread"]["avg_f1"] == pytest.approx(np.std([0.30, 0.26, 0.28], ddof=1))
  table = report.markdown_report(results)
  assert "| **28.0 ± 2.0** | 53.0 ± 3.0 | 3.0 ± 1.0 |" in table
  assert "| **25.0** | 51.0 | 5.0 |" in table  # A single run has no spread.
  assert "3 runs" in report.format_report(results)


def test_repeats_of_different_datasets_or_no_workdir_are_refused(tmp_path):
  a = _write_linear_eval(tmp_path / "a", tmp_path / "a", 0.3, 0.5, 0.1)
  b = _write_linear_eval(tmp_path / "b", tmp_path / "b", 0.3, 0.5, 0.1, aus=("AU1", "AU4"))
  with pytest.raises(UserError, match="label different AUs"):
    report.load_results([f"{a},{b}"])
  with pytest.raises(UserError, match="names no workdir"):
    report.load_results([","])
  with pytest.raises(UserError, match="does not exist"):
    report.load_results([f"{a},{tmp_path / 'missing'}"])
