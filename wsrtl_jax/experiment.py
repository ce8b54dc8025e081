"""What training and evaluation both start from: the module that streams the config's data, and
the mesh, store, folds, model and state of a run."""
from __future__ import annotations

import types

import ml_collections

from data_pipeline.errors import UserError
from wsrtl_jax import methods, models, parallel


def data_source(config: ml_collections.ConfigDict) -> types.ModuleType:
  """The module that streams `config.data` (load_builder, fold_splits, train_batches,
  train_stream, eval_batches, training_labels): the tfds store through tf.data
  (`data.source="store"`), or SynthAU rendered by the generator without TensorFlow
  (`"generator"`, for methods without labels)."""
  source = config.data.get("source", "store")
  if source == "generator":
    from data_pipeline.synthau import generator_stream
    return generator_stream
  if source != "store":
    raise UserError(f"data.source={source!r}; choose 'store' or 'generator'")
  from data_pipeline import input_pipeline
  return input_pipeline


def setup(config: ml_collections.ConfigDict):
  """(mesh, builder, splits, model, optimizer, state): what training and evaluation share, the
  state replicated over the mesh."""
  models.check_model_config(config)
  method = methods.get_method(config)
  mesh = parallel.make_mesh(config.num_devices)
  data = data_source(config)
  builder = data.load_builder(config)
  splits = data.fold_splits(config, builder)
  model, optimizer, state = method.create(config, len(splits.aus))
  state = parallel.replicate(state, mesh)
  return mesh, builder, splits, model, optimizer, state
