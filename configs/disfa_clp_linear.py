"""Linear evaluation of a CLP pretraining run on DISFA (3 subject-exclusive folds, 8 AUs,
occurrence = intensity >= 2); otherwise `bp4d_clp_linear`. The paper reports avg F1 57.4.
  python -m wsrtl_jax linear_eval --workdir PRETRAIN_DIR --config configs/disfa_clp_linear.py \\
      --config.data.fold=2 --out PRETRAIN_DIR/linear_disfa_fold2
"""
import ml_collections

from configs import bp4d_clp_linear


def get_config() -> ml_collections.ConfigDict:
  c = bp4d_clp_linear.get_config()
  c.data.name = "disfa"
  c.data.num_val_subjects = 2
  return c
