"""`protocol`: every fold x seed trained, the per-AU table over folds with its spread over seeds."""
import json

from PIL import Image

from tests.helpers import cli_args, run_cli


def test_protocol_trains_every_fold_and_seed_then_skips_them(tmp_path):
  workdir = tmp_path / "protocol"
  args = cli_args("protocol", workdir, num_train_steps=4) + ["--folds", "1,2", "--seeds", "0,1"]
  result = run_cli(args)
  assert result.returncode == 0, result.stderr[-3000:]
  runs = {f"fold{f}_seed{s}" for f in (1, 2) for s in (0, 1)}
  assert runs <= {p.name for p in workdir.iterdir()}
  evals = {r: json.loads((workdir / r / "eval.json").read_text()) for r in runs}
  assert {(e["fold"], json.loads((workdir / r / "config.json").read_text())["seed"])
          for r, e in evals.items()} == {(f, s) for f in (1, 2) for s in (0, 1)}

  summary = json.loads((workdir / "protocol.json").read_text())
  assert summary["folds"] == [1, 2] and summary["seeds"] == [0, 1]
  fold1 = [evals[f"fold1_seed{s}"]["per_au_f1"]["AU12"] for s in (0, 1)]
  assert abs(summary["per_fold"]["1"]["per_au_f1"]["AU12"] - sum(fold1) / 2) < 1e-9
  per_seed = [sum(evals[f"fold{f}_seed{s}"]["avg_f1"] for f in (1, 2)) / 2 for s in (0, 1)]
  assert abs(summary["avg_f1"] - sum(per_seed) / 2) < 1e-9
  assert abs(summary["avg_f1_std_over_seeds"] - abs(per_seed[0] - per_seed[1]) / 2 ** 0.5) < 1e-9
  assert "fold 2 (mean of 2 seeds)" in result.stdout and "mean of 2 folds" in result.stdout
  assert "std over seeds 0,1" in result.stdout
  assert "| mean of 2 folds |" in (workdir / "protocol.md").read_text()
  with Image.open(workdir / "protocol_per_au_f1.png") as image:
    assert image.format == "PNG"

  again = run_cli(args)  # Every run finished: nothing is trained again, the table is the same.
  assert again.returncode == 0, again.stderr[-3000:]
  assert again.stdout.count("finished, skipped") == 4
  assert json.loads((workdir / "protocol.json").read_text()) == summary

  changed = run_cli(cli_args("protocol", workdir, num_train_steps=6) + ["--folds", "1"])
  assert changed.returncode == 2
  assert "fold1_seed0' finished with other settings (num_train_steps (4 -> 6))" in changed.stderr
  assert "Traceback" not in changed.stderr


def test_protocol_names_a_bad_fold_list(tmp_path):
  result = run_cli(cli_args("protocol", tmp_path / "w") + ["--folds", "1,x"])
  assert result.returncode == 2
  assert "--folds takes integers joined by commas" in result.stderr
