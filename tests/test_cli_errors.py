"""Bad input is a one-line error that names what is wrong, never a traceback."""
import pytest

from tests.helpers import cli_args, run_cli


def assert_one_line_error(result, *fragments):
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ")
  for fragment in fragments:
    assert fragment in last


@pytest.mark.parametrize("override, fragments", [
    ({"model.backbon": "resnet18"}, ["unknown config key 'model.backbon'", "backbone"]),
    ({"modle.width": "8"}, ["unknown config key 'modle'"]),
    ({"model.backbone": "resnet19"}, ["unknown model.backbone 'resnet19'", "resnet50"]),
    ({"global_batch_size": "many"}, ["global_batch_size", "int"]),
])
def test_bad_config_values(tmp_path, override, fragments):
  assert_one_line_error(run_cli(cli_args("train", tmp_path / "w", **override)), *fragments)


def test_missing_config_file(tmp_path):
  result = run_cli(cli_args("train", tmp_path / "w", config="configs/nope.py"))
  assert_one_line_error(result, "config file 'configs/nope.py' does not exist")


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  result = run_cli(cli_args("train", blocker / "run"))
  assert_one_line_error(result, f"cannot write to workdir '{blocker / 'run'}'")


def test_evaluate_without_a_run(tmp_path):
  result = run_cli(cli_args("evaluate", tmp_path, config=None)[:6])
  assert_one_line_error(result, f"'{tmp_path}/config.json' does not exist")
