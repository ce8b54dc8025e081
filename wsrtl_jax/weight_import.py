"""torchvision ResNet weights (ImageNet) -> a DIR that `model.init_from` starts a backbone from.

A torchvision state dict (`.pth`, read with torch; `.safetensors`, read without) is converted to
this project's ResNet: convolution kernels OIHW -> HWIO, BatchNorm weight/bias/running mean/var ->
scale/bias/mean/var, blocks in order. The DIR holds a `config.json` (the backbone with
`model.padding="torch"`, torchvision's symmetric padding of stride-2 convolutions and the max-pool)
and a step-0 checkpoint, like a pretraining run. No TensorFlow here.
"""
from __future__ import annotations

import os
import re
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from data_pipeline.au_sets import aus_of
from data_pipeline.config_loading import load_config
from data_pipeline.errors import UserError
from wsrtl_jax import checkpointing, methods
from wsrtl_jax.models.resnet import BACKBONES, BasicBlock

_BLOCK = re.compile(r"layer(\d)\.(\d+)\.")


def import_torchvision():
  """(torch, torchvision), safe beside TensorFlow: torchvision pulls in triton, whose LLVM crashes
  the process when loaded after TensorFlow's, so where TensorFlow is already loaded triton is
  hidden (torch then runs without its GPU compiler). ImportError where either is missing."""
  if "tensorflow" in sys.modules and "triton" not in sys.modules:
    sys.modules["triton"] = None
  import torch
  import torchvision
  return torch, torchvision


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """{name: float32 array} of a torchvision state dict in `path` (.pth/.pt or .safetensors); a
  checkpoint that wraps it in "state_dict" or "model", or prefixes "module.", is unwrapped."""
  if not os.path.isfile(path):
    raise UserError(f"--torchvision '{path}' does not exist")
  if path.endswith(".safetensors"):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    try:
      state = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
      raise UserError(f"'{path}' is not a readable .safetensors file ({e})") from None
  elif path.endswith((".pth", ".pt")):
    try:
      import torch
    except ImportError:
      raise UserError(f"reading '{path}' needs torch (pip install torch), or give the weights "
                      "as .safetensors") from None
    try:
      state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a file that is not a checkpoint.
      raise UserError(f"'{path}' is not a readable PyTorch checkpoint ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''})") from None
    for key in ("state_dict", "model"):
      if isinstance(state, dict) and isinstance(state.get(key), dict):
        state = state[key]
    if not isinstance(state, dict):
      raise UserError(f"'{path}' holds a {type(state).__name__}, not a state dict")
    state = {k: v.numpy() for k, v in state.items() if hasattr(v, "numpy")}
  else:
    raise UserError(f"--torchvision '{path}': expected a .pth, .pt or .safetensors file")
  state = {k.removeprefix("module."): np.asarray(v) for k, v in state.items()}
  if "conv1.weight" not in state or "layer1.0.conv1.weight" not in state:
    raise UserError(f"'{path}' is not a torchvision ResNet state dict (no conv1.weight and "
                    "layer1.0.conv1.weight)")
  return state


def architecture_of(state: dict[str, np.ndarray]) -> tuple[str, int]:
  """(backbone name or a description, stem width) of a torchvision ResNet state dict."""
  blocks = [0, 0, 0, 0]
  for key in state:
    match = _BLOCK.match(key)
    if match:
      stage, index = int(match[1]) - 1, int(match[2])
      blocks[stage] = max(blocks[stage], index + 1)
  bottleneck = "layer1.0.conv3.weight" in state
  for name, spec in BACKBONES.items():
    if tuple(spec["stage_sizes"]) == tuple(blocks) and (spec["block"] is not BasicBlock) == \
        bottleneck:
      return name, int(state["conv1.weight"].shape[0])
  kind = "bottleneck" if bottleneck else "basic"
  return f"a ResNet of {kind} blocks {blocks}", int(state["conv1.weight"].shape[0])


def _conv(state: dict, name: str) -> dict:
  return {"kernel": np.transpose(state[f"{name}.weight"], (2, 3, 1, 0))}  # OIHW -> HWIO.


def _norm(state: dict, name: str) -> tuple[dict, dict]:
  return ({"scale": state[f"{name}.weight"], "bias": state[f"{name}.bias"]},
          {"mean": state[f"{name}.running_mean"], "var": state[f"{name}.running_var"]})


def convert(state: dict[str, np.ndarray], backbone: str) -> tuple[dict, dict]:
  """(params, batch_stats) of the backbone module from a torchvision state dict."""
  spec = BACKBONES[backbone]
  block_name = spec["block"].__name__
  convs = 2 if spec["block"] is BasicBlock else 3
  params, stats = {"stem_conv": _conv(state, "conv1")}, {}
  params["stem_norm"], stats["stem_norm"] = _norm(state, "bn1")
  index = 0
  for stage, num_blocks in enumerate(spec["stage_sizes"]):
    for b in range(num_blocks):
      prefix, p, s = f"layer{stage + 1}.{b}", {}, {}
      for c in range(convs):
        p[f"Conv_{c}"] = _conv(state, f"{prefix}.conv{c + 1}")
        p[f"BatchNorm_{c}"], s[f"BatchNorm_{c}"] = _norm(state, f"{prefix}.bn{c + 1}")
      if f"{prefix}.downsample.0.weight" in state:
        p["proj_conv"] = _conv(state, f"{prefix}.downsample.0")
        p["proj_norm"], s["proj_norm"] = _norm(state, f"{prefix}.downsample.1")
      params[f"{block_name}_{index}"], stats[f"{block_name}_{index}"] = p, s
      index += 1
  as_f32 = lambda tree: jax.tree.map(lambda x: np.asarray(x, np.float32), tree)
  return as_f32(params), as_f32(stats)


def _shapes(tree: dict) -> dict:
  return {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(tree).items()}


def import_config(backbone: str, width: int, source: str) -> ml_collections.ConfigDict:
  """The config of an imported DIR: the supervised AU detector on this backbone, torchvision's
  padding; `imported_from` names the file."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = load_config(os.path.join(root, "configs", "synthau_supervised.py"))
  config.model.backbone, config.model.width, config.model.padding = backbone, width, "torch"
  config.imported_from = os.path.abspath(source)
  return config


def import_weights(source: str, backbone: str, out_dir: str) -> tuple[ml_collections.ConfigDict,
                                                                        object, object]:
  """Converts `source` into `out_dir` (config.json + a step-0 checkpoint); returns (config,
  model, state). The file's architecture must be `backbone`; `out_dir` must be new or empty."""
  if backbone not in BACKBONES:
    raise UserError(f"--backbone '{backbone}': choose one of {', '.join(BACKBONES)}")
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise UserError(f"--out '{out_dir}' is not empty; give a new folder")
  state_dict = read_state_dict(source)
  found, width = architecture_of(state_dict)
  if found != backbone:
    raise UserError(f"'{source}' holds {found} (stem width {width}), not --backbone {backbone}")
  config = import_config(backbone, width, source)
  model, _, state = methods.create(config, len(aus_of(config.data.name)))
  params, stats = convert(state_dict, backbone)
  for name, mine, theirs in (("parameters", state.params["backbone"], params),
                             ("BatchNorm statistics", state.batch_stats["backbone"], stats)):
    if _shapes(mine) != _shapes(theirs):
      differ = sorted(set(_shapes(mine).items()) ^ set(_shapes(theirs).items()))[:3]
      raise UserError(f"'{source}': its {name} do not fit {backbone} of width {width} "
                      f"(first differences: {differ})")
  state = state.replace(params={**state.params, "backbone": jax.tree.map(jnp.asarray, params)},
                        batch_stats={**state.batch_stats,
                                     "backbone": jax.tree.map(jnp.asarray, stats)})
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  manager = checkpointing.checkpoint_manager(out_dir, 1)
  checkpointing.save(manager, 0, state)
  manager.wait_until_finished()
  return config, model, state


def pooled_features(model, state, image: np.ndarray) -> np.ndarray:
  """The model's backbone's globally pooled last stage for one RGB uint8 image [H, W, 3]."""
  backbone = model.backbone
  variables = {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}
  feature = backbone.apply(variables, jnp.asarray(image)[None], train=False)[-1]
  return np.asarray(jnp.mean(feature.astype(jnp.float32), axis=(1, 2))[0])


def torchvision_features(source: str, backbone: str, image: np.ndarray) -> np.ndarray:
  """torchvision's pooled features (the input of its `fc`) for the same image and weights."""
  torch, torchvision = import_torchvision()
  net = getattr(torchvision.models, backbone)(weights=None)
  net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                       read_state_dict(source).items()})
  net.fc = torch.nn.Identity()
  net.eval()
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  x = ((image.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)
  with torch.no_grad():
    return net(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()[0]


def check(source: str, backbone: str, model, state, image_path: str, size: int = 224) -> dict:
  """How far the imported backbone's pooled features are from torchvision's on `image_path`,
  resized to `size`: max_abs_diff, max_rel_diff (over the largest torchvision feature),
  feature_dim."""
  import cv2
  from data_pipeline import video_io
  image = video_io.read_image(image_path)
  if image is None:
    raise UserError(f"--check '{image_path}' cannot be read as an image")
  image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
  ours = pooled_features(model, state, image)
  theirs = torchvision_features(source, backbone, image)
  diff = float(np.max(np.abs(ours - theirs)))
  return {"image": image_path, "max_abs_diff": diff,
          "max_rel_diff": diff / max(float(np.max(np.abs(theirs))), 1e-12),
          "feature_dim": int(ours.shape[0])}
