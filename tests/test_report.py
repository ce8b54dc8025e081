"""`report`: runs side by side, and repeats of a run (seeds) averaged into one row."""
import json

import numpy as np
import pytest

from data_pipeline.errors import UserError
from wsrtl_jax import report


def _write_linear_eval(path, pretrained, avg_f1, auc, identity=None, accuracy=0.8,
                       aus=("AU1", "AU2"), dataset="synthau/tiny"):
  path.mkdir(parents=True)
  result = {"avg_f1": avg_f1, "auc": auc, "accuracy": accuracy,
            "per_au_f1": {a: avg_f1 for a in aus}, "chance_all_positive": {a: 0.3 for a in aus},
            "protocol": "linear", "feature": "au_code", "random_init": False,
            "pretrained": str(pretrained), "dataset": dataset, "fold": 1, "split": "test",
            "step": 100}
  if identity is not None:
    result["identity_probe"] = {"accuracy": identity, "chance": 0.25}
  (path / "eval.json").write_text(json.dumps(result))
  return str(path)


def test_repeats_are_averaged_into_one_row_with_their_spread(tmp_path):
  seeds = [_write_linear_eval(tmp_path / f"clp_s{s}" / "linear_eval", tmp_path / f"clp_s{s}",
                              f1, auc, ident, accuracy)
           for s, f1, auc, ident, accuracy in ((0, 0.30, 0.56, 0.02, 0.70),
                                               (1, 0.26, 0.50, 0.04, 0.74),
                                               (2, 0.28, 0.53, 0.03, 0.72))]
  single = _write_linear_eval(tmp_path / "moco" / "linear_eval", tmp_path / "moco", 0.25, 0.51,
                              0.05)
  results = report.load_results([",".join(seeds), single])

  assert list(results) == ["clp_s0 (linear), mean of 3", "moco (linear)"]
  mean = results["clp_s0 (linear), mean of 3"]
  assert mean["avg_f1"] == pytest.approx(0.28) and mean["auc"] == pytest.approx(0.53)
  assert mean["accuracy"] == pytest.approx(0.72)
  assert mean["per_au_f1"]["AU2"] == pytest.approx(0.28)
  assert mean["identity_probe"]["accuracy"] == pytest.approx(0.03)
  assert mean["spread"]["avg_f1"] == pytest.approx(np.std([0.30, 0.26, 0.28], ddof=1))
  table = report.markdown_report(results)
  assert "| **28.0 ± 2.0** | 53.0 ± 3.0 | 3.0 ± 1.0 |" in table
  assert "| **25.0** | 51.0 | 5.0 |" in table  # A single run has no spread.
  text = report.format_report(results)
  assert "identity probe 3.0 ± 1.0 (chance 25.0)" in text and "3 runs" in text


def test_rows_with_the_same_name_are_all_kept(tmp_path):
  """Two probes of one pretraining run (say two probe seeds) must not hide each other."""
  first = _write_linear_eval(tmp_path / "probe0", tmp_path / "clp", 0.30, 0.56, 0.02)
  second = _write_linear_eval(tmp_path / "probe1", tmp_path / "clp", 0.20, 0.52, 0.02)
  results = report.load_results([first, second])
  assert [r["avg_f1"] for r in results.values()] == [0.30, 0.20]
  assert list(results)[1] == f"clp (linear) [{second}]"


@pytest.mark.parametrize("other, message", [
    (dict(aus=("AU1", "AU4")), "label different AUs"),
    (dict(dataset="synthau/small_aus_only"), "differ in dataset"),
    (dict(identity=None), "only some of the repeats"),
])
def test_repeats_that_are_not_one_run_are_refused(tmp_path, other, message):
  a = _write_linear_eval(tmp_path / "a", tmp_path / "a", 0.3, 0.5, 0.1)
  b = _write_linear_eval(tmp_path / "b", tmp_path / "b", 0.3, 0.5, **{"identity": 0.1, **other})
  with pytest.raises(UserError, match=message):
    report.load_results([f"{a},{b}"])


def test_unreadable_or_missing_results_name_the_file(tmp_path):
  a = _write_linear_eval(tmp_path / "a", tmp_path / "a", 0.3, 0.5)
  with pytest.raises(UserError, match="names no workdir"):
    report.load_results([","])
  with pytest.raises(UserError, match="does not exist"):
    report.load_results([f"{a},{tmp_path / 'missing'}"])
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / "eval.json").write_text("{not json")
  with pytest.raises(UserError, match="broken/eval.json' is not valid JSON"):
    report.load_results([str(tmp_path / "broken")])
  (tmp_path / "broken" / "eval.json").write_text(json.dumps({"avg_f1": 0.3}))
  with pytest.raises(UserError, match="lacks auc"):
    report.load_results([str(tmp_path / "broken")])
  for bad, shown in ((None, "avg_f1=None"), ("0.3", "avg_f1='0.3'")):
    (tmp_path / "broken" / "eval.json").write_text(json.dumps(
        {**json.loads((tmp_path / "a" / "eval.json").read_text()), "avg_f1": bad}))
    with pytest.raises(UserError, match=f"holds non-numeric scores \\({shown}\\)"):
      report.load_results([str(tmp_path / "broken")])
