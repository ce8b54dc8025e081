"""Linear evaluation of a CLP pretraining run on BP4D (3 subject-exclusive folds, `data.fold`):
frozen network, BatchNorm + linear probe on the AU code, every training frame labelled, the probe
chosen on validation subjects carved from the training folds. The paper reports avg F1 62.4.
  python -m wsrtl_jax linear_eval --workdir PRETRAIN_DIR --config configs/bp4d_clp_linear.py \\
      --config.data.fold=2 --out PRETRAIN_DIR/linear_bp4d_fold2
"""
import ml_collections

from configs import synthau_clp_linear


def get_config() -> ml_collections.ConfigDict:
  c = synthau_clp_linear.get_config()
  c.data.name = "bp4d"
  c.data.num_val_subjects = 3  # Of the ~27 training subjects of a fold.
  c.data.label_fraction = 1.0
  c.data.image_size = 224
  c.data.crop_fraction = 0.875
  c.eval.batch_size = 256
  c.linear.steps = 10000
  c.linear.batch_size = 1024
  c.linear.score_every = 500
  return c
