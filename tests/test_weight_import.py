"""`import_weights`: torchvision ResNets (random weights, randomised BatchNorm) imported give
torchvision's pooled features on real face photographs, and a run fine-tunes from them."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipeline.errors import UserError
from tests.helpers import ROOT, cli_args
from wsrtl_jax import cli, weight_import

try:
  torch, torchvision = weight_import.import_torchvision()
except ImportError:
  pytest.skip("torch and torchvision are not installed (requirements-test.txt)",
              allow_module_level=True)

FACES = [os.path.join(ROOT, "tests", "data", name)
         for name in ("astronaut_face.jpg", "cameraman_profile.jpg")]


def _random_resnet(name: str, seed: int):
  """A torchvision ResNet with random weights and random BatchNorm affine and statistics (the
  freshly built ones are 1, 0, 0, 1 and would hide a swapped mean/var or scale/bias)."""
  torch.manual_seed(seed)
  net = getattr(torchvision.models, name)(weights=None)
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5)
        module.bias.normal_(0, 0.1)
        module.running_mean.normal_(0, 0.1)
        module.running_var.uniform_(0.5, 1.5)
  return net


@pytest.mark.parametrize("name,suffix", [("resnet18", ".pth"), ("resnet50", ".safetensors")])
def test_imported_backbone_gives_torchvisions_features(tmp_path, capsys, name, suffix):
  state = _random_resnet(name, seed=len(name)).state_dict()
  source = str(tmp_path / f"{name}{suffix}")
  if suffix == ".pth":
    torch.save(state, source)
  else:
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, source)
  out = tmp_path / "imported"
  cli.run(["import_weights", "--torchvision", source, "--backbone", name, "--out", str(out),
           "--check", FACES[0]])
  check = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert check["feature_dim"] == (512 if name == "resnet18" else 2048)
  assert check["max_rel_diff"] < 1e-4, check
  config = json.loads((out / "config.json").read_text())
  assert config["model"]["backbone"] == name and config["model"]["padding"] == "torch"
  # Read back as `model.init_from` reads it, on the second photograph.
  from wsrtl_jax import pretrained
  _, model, restored, step = pretrained.load_run(str(out))
  assert step == 0
  second = weight_import.check(source, name, model, restored, FACES[1])
  assert second["max_rel_diff"] < 1e-4, second


def test_a_file_of_another_backbone_is_one_line_naming_both(tmp_path):
  source = str(tmp_path / "r18.pth")
  torch.save(_random_resnet("resnet18", 0).state_dict(), source)
  with pytest.raises(UserError, match=r"holds resnet18 \(stem width 64\), not --backbone resnet50"):
    weight_import.import_weights(source, "resnet50", str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()
  (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
  with pytest.raises(UserError, match="junk.pth' is not a readable PyTorch checkpoint"):
    weight_import.import_weights(str(tmp_path / "junk.pth"), "resnet18", str(tmp_path / "o"))


def test_fine_tuning_starts_from_imported_weights(tmp_path, capsys):
  source = str(tmp_path / "r18.pth")
  torch.save(_random_resnet("resnet18", 1).state_dict(), source)
  imported = tmp_path / "imagenet"
  weight_import.import_weights(source, "resnet18", str(imported))
  tuned = tmp_path / "tuned"
  args = cli_args("train", tuned, **{"model.init_from": str(imported), "model.width": 64,
                                     "model.padding": "torch", "num_train_steps": 2,
                                     "checkpoint_every": 2})[3:]
  cli.run(args)
  assert f"Backbone initialised from {imported}/checkpoints step 0" in capsys.readouterr().out
  assert json.loads((tuned / "eval.json").read_text())["step"] == 2
  with pytest.raises(UserError, match="its backbone pads 'torch', this config 'same'"):
    cli.run(cli_args("train", tmp_path / "other", **{"model.init_from": str(imported),
                                                     "model.width": 64})[3:])
  assert not (tmp_path / "other").exists()


def test_torchvision_imports_beside_tensorflow():
  """A process that loaded TensorFlow first (the data path, a notebook) can still check weights."""
  code = ("import tensorflow\nfrom wsrtl_jax import weight_import\n"
          "torch, tv = weight_import.import_torchvision()\n"
          "print(tv.models.resnet18().eval()(torch.zeros(1, 3, 64, 64)).shape[-1])")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split()[-1] == "1000"
