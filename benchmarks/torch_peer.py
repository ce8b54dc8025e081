"""The supervised training step of wsrtl_jax, in PyTorch, as a reference peer for `bench`.

Same network (ResNet-18/34/50 v1.5 at the config's width, zero-initialised last BatchNorm of each
block, input normalised inside the model from uint8), same loss (masked, AU-weighted BCE over the
known labels), same optimiser (AdamW, global-norm clipping), same batch and input size. On GPU:
channels-last, bf16 autocast when `model.dtype` is bfloat16, and `torch.compile` unless
`--no_compile`. Prints one JSON line with the fields `bench` prints.

  python benchmarks/torch_peer.py --config configs/synthau_supervised.py [--config.KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data_pipeline.au_sets import aus_of  # noqa: E402
from data_pipeline.config_loading import load_config, override_config, split_overrides  # noqa: E402

STAGES = {"resnet18": ((2, 2, 2, 2), False), "resnet34": ((3, 4, 6, 3), False),
          "resnet50": ((3, 4, 6, 3), True)}


def _norm(channels: int, zero: bool = False) -> nn.BatchNorm2d:
  norm = nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)  # torch's 0.1 = flax's 0.9.
  if zero:
    nn.init.zeros_(norm.weight)
  return norm


class Block(nn.Module):
  """BasicBlock (two 3x3) or Bottleneck (1x1-3x3-1x1, stride on the 3x3), as in resnet.py."""

  def __init__(self, cin: int, filters: int, stride: int, bottleneck: bool):
    super().__init__()
    cout = filters * (4 if bottleneck else 1)
    if bottleneck:
      self.body = nn.Sequential(
          nn.Conv2d(cin, filters, 1, bias=False), _norm(filters), nn.ReLU(inplace=True),
          nn.Conv2d(filters, filters, 3, stride, 1, bias=False), _norm(filters),
          nn.ReLU(inplace=True), nn.Conv2d(filters, cout, 1, bias=False), _norm(cout, True))
    else:
      self.body = nn.Sequential(
          nn.Conv2d(cin, filters, 3, stride, 1, bias=False), _norm(filters), nn.ReLU(inplace=True),
          nn.Conv2d(filters, cout, 3, 1, 1, bias=False), _norm(cout, True))
    self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))
                 if stride != 1 or cin != cout else nn.Identity())
    self.out_channels = cout

  def forward(self, x):
    return torch.relu(self.proj(x) + self.body(x))


class AUDetector(nn.Module):
  def __init__(self, backbone: str, width: int, num_aus: int):
    super().__init__()
    stages, bottleneck = STAGES[backbone]
    self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
    self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)
    layers = [nn.Conv2d(3, width, 7, 2, 3, bias=False), _norm(width), nn.ReLU(inplace=True),
              nn.MaxPool2d(3, 2, 1)]
    cin = width
    for stage, blocks in enumerate(stages):
      for b in range(blocks):
        block = Block(cin, width * 2**stage, 2 if stage > 0 and b == 0 else 1, bottleneck)
        layers.append(block)
        cin = block.out_channels
    self.trunk = nn.Sequential(*layers)
    self.head = nn.Linear(cin, num_aus)

  def forward(self, images_uint8):
    x = (images_uint8.float() - self.mean) / self.std
    return self.head(self.trunk(x).mean(dim=(2, 3)))


def benchmark(config, steps: int, compile_model: bool) -> dict:
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  num_aus, size, b = len(aus_of(config.data.name)), config.data.image_size, config.global_batch_size
  model = AUDetector(config.model.backbone, config.model.width, num_aus).to(device)
  memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
  model = model.to(memory_format=memory_format)
  optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.learning_rate,
                                weight_decay=config.optim.weight_decay)
  autocast = config.model.dtype == "bfloat16"
  generator = torch.Generator().manual_seed(config.seed)
  images = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=generator)
  images = images.to(device).contiguous(memory_format=memory_format)
  labels = torch.randint(0, 2, (b, num_aus), generator=generator).float().to(device)
  weights = torch.ones(num_aus, device=device)

  def step():
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
      logits = model(images)
    loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels, reduction="none")
    known = (labels >= 0).float()
    loss = (loss * weights * known).sum() / known.sum().clamp(min=1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip_norm)
    optimizer.step()
    return loss

  if compile_model and device.type == "cuda":
    step = torch.compile(step)
  sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  t0 = time.perf_counter()
  step().item()
  sync()
  compile_s = time.perf_counter() - t0
  step().item()
  sync()
  t0 = time.perf_counter()
  for _ in range(steps):
    loss = step()
  loss.item()
  sync()
  seconds = (time.perf_counter() - t0) / steps
  return {"framework": f"pytorch {torch.__version__}", "backbone": config.model.backbone,
          "image_size": size, "dtype": config.model.dtype, "device_kind": device.type,
          "devices": 1, "per_device_batch": b, "images_per_sec": round(b / seconds, 2),
          "step_ms": round(seconds * 1000, 3), "compile_s": round(compile_s, 2),
          "threads": torch.get_num_threads()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--no_compile", action="store_true")
  overrides, rest = split_overrides(sys.argv[1:])
  args = parser.parse_args(rest)
  config = override_config(load_config(args.config), overrides)
  print(json.dumps(benchmark(config, args.steps, not args.no_compile)), flush=True)


if __name__ == "__main__":
  main()
