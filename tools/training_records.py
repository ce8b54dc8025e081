"""The command line the fold audits share: `--config FILE`, then that config and the encoded
records of its fold's training split, in store order."""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_pipeline import input_pipeline  # noqa: E402
from data_pipeline.config_loading import load_config  # noqa: E402


def training_records(description: str):
  """(config, tf.data.Dataset of the training split's records) for the `--config` given."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--config", default="configs/synthau_wsrtl.py")
  config = load_config(parser.parse_args().config)
  builder = input_pipeline.load_builder(config)
  return config, input_pipeline.records(builder, input_pipeline.fold_splits(config, builder).train)
