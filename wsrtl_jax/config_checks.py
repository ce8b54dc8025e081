"""Range checks of the config values a run reads, before anything runs or is written: each bad
value is a one-line error naming the key, the value and the range it must lie in."""
from __future__ import annotations

from typing import Callable

import ml_collections

from data_pipeline.config_loading import lookup
from data_pipeline.errors import UserError

_POSITIVE = ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1)
_COUNT = ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0)
_ABOVE_ZERO = ("a number > 0", lambda v: v > 0)
_NOT_NEGATIVE = ("a number >= 0", lambda v: v >= 0)
_FRACTION = ("a number in (0, 1]", lambda v: 0 < v <= 1)
_PROBABILITY = ("a number in [0, 1]", lambda v: 0 <= v <= 1)
_BELOW_ONE = ("a number in [0, 1)", lambda v: 0 <= v < 1)

# Key -> (the range in words, whether a value lies in it). Keys a config lacks are not checked.
RANGES: dict[str, tuple[str, Callable]] = {
    "num_train_steps": _POSITIVE, "global_batch_size": _POSITIVE, "log_every": _POSITIVE,
    "checkpoint_every": _POSITIVE, "keep_checkpoints": _POSITIVE, "num_devices": _COUNT,
    "data.image_size": _POSITIVE, "data.num_val_subjects": _COUNT,
    "data.label_fraction": _FRACTION, "data.shuffle_buffer": _POSITIVE,
    "data.crop_fraction": _FRACTION, "data.color_jitter": _PROBABILITY,
    "data.prefetch_to_device": _COUNT, "data.pair_gap": _POSITIVE, "data.clip_length": _POSITIVE,
    "data.clip_stride": _POSITIVE, "model.width": _POSITIVE,
    "optim.learning_rate": _ABOVE_ZERO, "optim.warmup_steps": _COUNT,
    "optim.weight_decay": _NOT_NEGATIVE, "optim.grad_clip_norm": _NOT_NEGATIVE,
    "eval.batch_size": _POSITIVE, "eval.threshold": _PROBABILITY,
    "wsrtl.pairs_batch_size": _POSITIVE, "wsrtl.semi.ema_decay": _BELOW_ONE,
    "clp.queue_size": _POSITIVE, "clp.temperature": _ABOVE_ZERO, "clp.momentum": _BELOW_ONE,
    "linear.steps": _POSITIVE, "linear.batch_size": _POSITIVE,
    "linear.learning_rate": _ABOVE_ZERO,
}


def check_ranges(config: ml_collections.ConfigDict) -> None:
  """Raises UserError for the first value of RANGES outside its range."""
  for key, (words, inside) in RANGES.items():
    value = lookup(config, key)
    if value is None or isinstance(value, bool):
      continue
    if not isinstance(value, (int, float)) or not inside(value):
      raise UserError(f"{key}={value!r}; expected {words}")
