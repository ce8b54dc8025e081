"""Linen ResNet-18/34/50 backbones with cross-replica BatchNorm (after flax/examples/imagenet)."""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

# ImageNet statistics; images arrive as uint8 so the host ships a quarter of the bytes.
IMAGE_MEAN = jnp.array([0.485, 0.456, 0.406]) * 255.0
IMAGE_STD = jnp.array([0.229, 0.224, 0.225]) * 255.0


def normalize_image(images: jnp.ndarray, dtype: Any) -> jnp.ndarray:
  """uint8 (or float 0-255) [B, H, W, 3] -> normalised `dtype`."""
  return ((images.astype(jnp.float32) - IMAGE_MEAN) / IMAGE_STD).astype(dtype)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions (ResNet-18/34)."""
  filters: int
  conv: Any
  norm: Any
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), self.strides)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3))(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters, (1, 1), self.strides, name="proj_conv")(residual)
      residual = self.norm(name="proj_norm")(residual)
    return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
  """1x1 - 3x3 - 1x1 bottleneck (ResNet-50)."""
  filters: int
  conv: Any
  norm: Any
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))
    y = self.conv(self.filters * 4, (1, 1))(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters * 4, (1, 1), self.strides, name="proj_conv")(residual)
      residual = self.norm(name="proj_norm")(residual)
    return nn.relu(residual + y)


# How the 3x3 convolutions and the max-pool pad: "torch" pads one pixel on every side, as
# torchvision does (needed for its ImageNet weights); "same" is XLA's SAME, which pads a stride-2
# window on the bottom and right only (even sizes).
PADDINGS = ("same", "torch")


class ResNet(nn.Module):
  """ResNet trunk; returns the feature map of every stage (strides 4, 8, 16, 32)."""
  stage_sizes: Sequence[int]
  block: Any
  width: int = 64
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None  # Mesh axis over which BatchNorm statistics are averaged.
  padding: str = "same"  # One of PADDINGS.

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool) -> list[jnp.ndarray]:
    pad = "SAME" if self.padding == "same" else [(1, 1), (1, 1)]

    def conv(features, kernel_size, strides=1, padding=None, **kwargs):
      """A bias-free convolution; 3x3 kernels pad by the ResNet's `padding`, 1x1 pad nothing."""
      if padding is None:
        padding = pad if tuple(kernel_size) == (3, 3) else "SAME"
      return nn.Conv(features, kernel_size, strides, padding=padding, use_bias=False,
                     dtype=self.dtype, **kwargs)

    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype, axis_name=self.bn_axis_name)
    x = normalize_image(images, self.dtype)
    x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="stem_conv")(x)
    x = nn.relu(norm(name="stem_norm")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=pad)
    features = []
    for stage, num_blocks in enumerate(self.stage_sizes):
      for b in range(num_blocks):
        strides = 2 if stage > 0 and b == 0 else 1
        x = self.block(self.width * 2**stage, conv=conv, norm=norm, strides=strides)(x)
      features.append(x)
    return features


BACKBONES = {
    "resnet18": dict(stage_sizes=(2, 2, 2, 2), block=BasicBlock),
    "resnet34": dict(stage_sizes=(3, 4, 6, 3), block=BasicBlock),
    "resnet50": dict(stage_sizes=(3, 4, 6, 3), block=BottleneckBlock),
}
