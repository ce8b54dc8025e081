"""Supervised AU detection baseline on SynthAU, every training frame labelled; the config every
other one starts from.

Sized for a CPU (ResNet-18 at half width, 96 px, 1,600 steps of 32); on accelerators raise
`model.width` (64), `model.backbone`, `data.image_size`, `num_train_steps` and
`global_batch_size`.
  python -m wsrtl_jax train --config configs/synthau_supervised.py --workdir DIR \\
      [--config.KEY=VALUE ...]
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "supervised"  # supervised | wsrtl | clp (configs/synthau_wsrtl.py, synthau_clp.py).
  c.seed = 0
  c.paper_row = ""  # A paper's per-AU row that `protocol` prints beside ours (wsrtl_jax.paper_rows).
  c.num_train_steps = 1600
  c.global_batch_size = 32
  c.num_devices = 0  # 0 = every device of every host.
  c.log_every = 20
  c.checkpoint_every = 400  # Each checkpoint is scored on the validation split.
  c.keep_checkpoints = 2  # Latest N kept for resume; the best on validation is kept too.

  c.data = ml_collections.ConfigDict()
  c.data.name = "synthau"  # tfds name, optionally with builder config: "synthau/tiny".
  c.data.data_dir = ""  # "" = tfds default ($TFDS_DATA_DIR or ~/tensorflow_datasets).
  # "store": the tfds store through tf.data. "generator": SynthAU rendered on the fly, without
  # TensorFlow (CLP pretraining only, e.g. on an accelerator host with JAX alone).
  c.data.source = "store"
  c.data.image_size = 96  # Network input side; frames are cropped and resized to it.
  c.data.fold = 1  # Fold k tests on part 4-k of the subjects (docs/DATA.md, Folds).
  c.data.num_val_subjects = 30  # Held out of the training parts for checkpoint selection.
  c.data.label_fraction = 1.0  # Share of training frames that keep their labels.
  c.data.shuffle_buffer = 16384  # Stores are in sequence order: shuffle the whole training set.
  c.data.crop_fraction = 0.9  # Side of the random training crop, as a share of the frame.
  c.data.flip = True
  c.data.color_jitter = 0.2  # Brightness/contrast/saturation strength; 0 turns it off.
  c.data.prefetch_to_device = 2
  c.data.pair_gap = 2  # Frame pairs (t, t + pair_gap), for the flow task,
  c.data.pair_reference = "next"  # or (t, the first frame of t's sequence) with "first".
  c.data.clip_length = 4  # Frames per clip, for temporal contrast.
  c.data.clip_stride = 1  # Frames between consecutive clip frames.

  c.model = ml_collections.ConfigDict()
  c.model.name = "au_detector"  # au_detector (global pooling) | wsrtl | clp (their configs).
  c.model.backbone = "resnet18"
  c.model.width = 32  # Channels of the first stage (64 is the standard ResNet).
  c.model.dtype = "float32"  # Compute dtype: float32 or bfloat16; parameters stay float32.
  c.model.padding = "same"  # same | torch: how 3x3 convolutions and the max-pool pad (torch for
  #                           torchvision's ImageNet weights: python -m wsrtl_jax import_weights).
  c.model.init_from = ""  # A pretraining or import_weights DIR to start the backbone from.

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 2e-3
  c.optim.warmup_steps = 50
  c.optim.weight_decay = 0.05
  c.optim.grad_clip_norm = 1.0  # 0 turns clipping off.

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 128
  c.eval.threshold = 0.5
  c.eval.model = "student"  # student | teacher | best, for a method with a mean teacher.
  return c
