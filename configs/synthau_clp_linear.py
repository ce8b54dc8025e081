"""Linear evaluation on SynthAU with 10% of the training frames labelled:
  python -m wsrtl_jax linear_eval --workdir PRETRAIN_DIR --config configs/synthau_clp_linear.py

The pretrained network (its config and last checkpoint come from PRETRAIN_DIR) is frozen; a
BatchNorm + linear probe on its AU code (CLP) or another feature (`linear.feature`) is trained
on the labelled frames' centre crops, selected on the validation subjects, and tested on the
fold's test subjects. An identity probe on the test subjects measures how much of the person
the same features still carry.
"""
import ml_collections

from configs import synthau_supervised


def get_config() -> ml_collections.ConfigDict:
  c = synthau_supervised.get_config()
  c.data.label_fraction = 0.1
  c.linear = ml_collections.ConfigDict()
  # au_code (the model's output) | backbone (pooled last stage) | backbone_map (unpooled) |
  # au_centres (the landmarks' AU centres, no network: what the geometry alone tells).
  c.linear.feature = "au_code"
  c.linear.steps = 2000
  c.linear.learning_rate = 1e-2
  c.linear.batch_size = 256
  c.linear.score_every = 100  # Validation average F1 every N steps; the best probe is kept.
  c.linear.identity_steps = 2000  # The identity probe (softmax over the test subjects).
  return c
