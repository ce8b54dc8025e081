"""WSRTL on SynthAU with 10% of the training frames labelled; `./run.sh` trains it and its
supervised baseline and prints both tables:
  python -m wsrtl_jax train --config configs/synthau_wsrtl.py --workdir DIR

`synthau_supervised`'s backbone, input and optimiser, 1000 steps. The baseline it is compared
with is this config with `--config.method=supervised --config.model.name=au_detector`: the same
steps, seed and labelled frames, nothing else. The unlabelled frames come as pairs for
inpainting, flow and the mean teacher. Ablations are overrides of the weights:
  --config.wsrtl.inpainting.weight=0   without RoI inpainting
  --config.wsrtl.flow.weight=0         without single-image flow
  --config.wsrtl.semi.weight=0         without semi-supervised learning
(all three: the WSRTL network trained on the labelled frames alone). docs/RESULTS.md has the
table and the command of every row.
"""
import ml_collections

from configs import synthau_supervised


def get_config() -> ml_collections.ConfigDict:
  c = synthau_supervised.get_config()
  c.method = "wsrtl"
  c.data.label_fraction = 0.1
  c.data.flow_cache = ""  # "" = flow targets on the device; or a data_pipeline.flow_cache DIR.
  c.data.pair_reference = "first"  # Flow from t to the first frame of its sequence.
  c.eval.model = "best"  # student | teacher | best (the better of the two on validation).
  c.num_train_steps = 1000
  c.checkpoint_every = 250

  c.model.name = "wsrtl"
  c.model.token_stage = 1  # Backbone stage the AU tokens are read from (0-3: strides 4-32).
  c.model.token_dim = 128
  c.model.relation_layers = 2  # Transformer layers across AU tokens (the relation embedding).
  c.model.relation_heads = 4
  c.model.inpaint_upsamples = 1  # Reconstruct at 1/2 (1) or full (2) input size.

  c.wsrtl = ml_collections.ConfigDict()
  c.wsrtl.pairs_batch_size = 16  # Unlabelled frame pairs per step, beside the labelled batch.
  c.wsrtl.batch_norm = "per_view"  # per_view: the views in their own pass, running statistics
  #                                  of the labelled frames alone; shared: one pass for all.

  c.wsrtl.inpainting = ml_collections.ConfigDict()
  # 0.2: at 1 the two decoders' gradients are 3-5 times the AU loss's and steer the backbone.
  c.wsrtl.inpainting.weight = 0.2  # 0 turns RoI inpainting off.
  c.wsrtl.inpainting.num_masked = 3  # AU regions masked per image (both centres of each).
  c.wsrtl.inpainting.patch_fraction = 0.2  # Side of each square patch, as a share of the input.

  c.wsrtl.flow = ml_collections.ConfigDict()
  c.wsrtl.flow.weight = 0.2  # 0 turns single-image flow off.
  c.wsrtl.flow.target = "template"  # The face's deformation from the mean face (one frame), or
  #                                  "pair": TV-L1 flow from t to its pair's other frame.
  c.wsrtl.flow.levels = 4  # TV-L1 target (wsrtl_jax.flow.estimate_flow) settings.
  c.wsrtl.flow.warps = 1
  c.wsrtl.flow.iterations = 10
  c.wsrtl.flow.align = True  # Align the pair's second frame onto t on the stable landmarks.

  c.wsrtl.semi = ml_collections.ConfigDict()
  c.wsrtl.semi.weight = 1.0  # 0 turns the mean teacher off.
  c.wsrtl.semi.ema_decay = 0.99
  c.wsrtl.semi.positive_threshold = 0.8  # Teacher probability above which a pseudo-label is 1,
  c.wsrtl.semi.negative_threshold = 0.2  # and below which it is 0; in between it is unknown.
  c.wsrtl.semi.strong_jitter = 0.4  # Extra colour jitter of the student's view.
  c.wsrtl.semi.rampup_steps = 300  # Sigmoid ramp-up of the semi-supervised weight.
  c.wsrtl.semi.masked_aus = "ignore"  # ignore: no pseudo-label for AUs the masks hide; keep.
  return c
