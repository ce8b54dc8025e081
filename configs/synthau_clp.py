"""CLP pretraining on SynthAU's unlabelled clips (no AU labels are read):
  python -m wsrtl_jax train --config configs/synthau_clp.py --workdir DIR
  (--config.data.source=generator: the clips rendered on the fly, without TensorFlow)

`synthau_supervised`'s backbone, input and optimiser. Each step takes `global_batch_size`
cross-identity units: two clips (different people) of `data.clip_length` frames
`data.clip_stride` apart, so 8 units are 64 frames. Evaluate the pretrained AU code with
  python -m wsrtl_jax linear_eval --workdir DIR --config configs/synthau_clp_linear.py
Ablations are overrides of the weights (docs/RESULTS.md has the table and every command):
  --config.clp.tcl.weight=0                                  without the temporal margin (TCL)
  --config.clp.cir.weight=0 --config.clp.cir.cycle_weight=0  without cross-identity reconstruction
  all three                                                  plain MoCo v2 on the same frames
"""
import ml_collections

from configs import synthau_supervised


def get_config() -> ml_collections.ConfigDict:
  c = synthau_supervised.get_config()
  c.method = "clp"
  c.global_batch_size = 8  # Cross-identity units per step (2 clips each).
  c.num_train_steps = 600
  c.checkpoint_every = 200
  c.optim.warmup_steps = 30
  c.data.clip_length = 4
  c.data.clip_stride = 4  # Frames 0, 4, 8, 12 of a 16-frame sequence: changes TCL can rank.

  c.model.name = "clp"
  c.model.code_dim = 128  # The AU code.

  c.clp = ml_collections.ConfigDict()
  c.clp.temperature = 0.2  # MoCo v2.
  c.clp.queue_size = 4096  # Negative keys; every step enqueues the keys of all its frames.
  c.clp.momentum = 0.99  # EMA decay of the momentum (key) encoder.
  # True: the other frames of a query's clip are also its negatives (same person, same views,
  # so only what changed over time tells them apart). Tried on SynthAU: no gain (RESULTS.md).
  c.clp.clip_negatives = False
  c.clp.view = ml_collections.ConfigDict()  # The key's view of each frame, drawn on device:
  # A flip and colour jitter of this strength; no crop (min_scale 1): a crop-invariant code
  # also ignores the small moves that AUs make (RESULTS.md). Below 1, a square crop of
  # min_scale-1 of the side, resized back.
  c.clp.view.min_scale = 1.0
  c.clp.view.color_jitter = 0.4
  c.clp.tcl = ml_collections.ConfigDict()
  c.clp.tcl.weight = 20.0  # 0 turns it off. Its hinge starts near 0.17, InfoNCE near 8.
  c.clp.tcl.margin = 0.1  # Similarity drop required per frame of distance from the anchor.
  c.clp.cir = ml_collections.ConfigDict()
  # L1 of a frame rebuilt from the next frame of its clip, moved to the frame's AU code (the L1
  # of frames 4 apart is about 0.1, hence the weight).
  c.clp.cir.weight = 20.0
  c.clp.cir.cycle_weight = 1.0  # 1 - cos of the AU code of a face moved to another's AU code.
  return c
