"""Reading a finished run back: its model and last checkpoint (for linear evaluation), and its
backbone as the starting point of another run (fine-tuning, `model.init_from`)."""
from __future__ import annotations

from typing import Any

import jax
import ml_collections

from data_pipeline.au_sets import aus_of
from data_pipeline.config_loading import saved_config
from data_pipeline.errors import UserError
from wsrtl_jax import checkpointing, methods, models
from wsrtl_jax.train_state import TrainState


def load_run(workdir: str, restore: bool = True, best: bool = False
             ) -> tuple[ml_collections.ConfigDict, Any, TrainState, int]:
  """(config, model, state, step) of the run in `workdir`, its latest checkpoint (with `best`:
  the one chosen on validation) restored on the host; with `restore=False` the same model
  freshly initialised (step 0), for random-init baselines of the same architecture."""
  config = saved_config(workdir)
  method = methods.get_method(config)
  model, _, state = method.create(config, len(aus_of(config.data.name)))
  if not restore:
    return config, model, state, 0
  manager = checkpointing.checkpoint_manager(workdir, config.keep_checkpoints, method.has_labels)
  step = manager.best_step() if best and method.has_labels else manager.latest_step()
  if step is None:
    raise UserError(f"no checkpoint in '{workdir}/checkpoints'; pretrain first")
  return config, model, checkpointing.restore(manager, step, state), step


def check_padding(config: ml_collections.ConfigDict, workdir: str) -> None:
  """UserError unless the run in `workdir` (model.init_from) pads its backbone as `config` does:
  the same weights give other features under another padding."""
  mine, theirs = models.padding_of(config), models.padding_of(saved_config(workdir))
  if mine != theirs:
    raise UserError(f"model.init_from='{workdir}': its backbone pads '{theirs}', this config "
                    f"'{mine}'; set --config.model.padding={theirs}")


def with_backbone_of(state: TrainState, workdir: str,
                     own_config: ml_collections.ConfigDict) -> TrainState:
  """`state` (of a run configured by `own_config`) with the backbone parameters and BatchNorm
  statistics of the run in `workdir`, which must have the same backbone and padding."""
  config, _, pretrained, step = load_run(workdir)
  shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
  parts = {}
  for name in ("params", "batch_stats"):
    mine, theirs = getattr(state, name)["backbone"], getattr(pretrained, name)["backbone"]
    if shapes(mine) != shapes(theirs):
      raise UserError(f"model.init_from='{workdir}': its backbone ({config.model.backbone}, "
                      f"width {config.model.width}) differs from this config's; use the same "
                      "model.backbone and model.width")
    parts[name] = {**getattr(state, name), "backbone": theirs}
  check_padding(own_config, workdir)
  print(f"Backbone initialised from {workdir}/checkpoints step {step}.", flush=True)
  return state.replace(**parts)
