"""CLP pretraining on unlabelled face videos (`face_videos`, e.g. VoxCeleb as the paper uses),
for linear evaluation or fine-tuning on BP4D and DISFA.
  python -m wsrtl_jax prepare --dataset face_videos/voxceleb --manual_dir /data/voxceleb
  python -m wsrtl_jax train --config configs/voxceleb_clp.py --workdir PRETRAIN_DIR
  python -m wsrtl_jax linear_eval --workdir PRETRAIN_DIR --config configs/bp4d_clp_linear.py
  python -m wsrtl_jax train --config configs/bp4d_wsrtl.py --config.method=supervised \\
      --config.model.name=au_detector --config.model.init_from=PRETRAIN_DIR --workdir ...
Faces aligned to 256 px, random 224 crops, ResNet-50 in bfloat16; sized for one accelerator host
(8 devices: 8 units = 64 frames per device). MoCo's long-run settings: queue 65536, momentum 0.999.
"""
import ml_collections

from configs import synthau_clp


def get_config() -> ml_collections.ConfigDict:
  c = synthau_clp.get_config()
  c.data.name = "face_videos/voxceleb"
  c.data.image_size = 224
  c.data.crop_fraction = 0.875  # 224 of the 256 px aligned face.
  c.data.shuffle_buffer = 50000
  c.data.clip_stride = 4  # 25 fps video: clip frames 0.16 s apart, a clip spans 0.5 s.
  c.global_batch_size = 64  # Units (2 clips of 4 frames): 512 frames per step.
  c.num_train_steps = 100000
  c.checkpoint_every = 5000
  c.log_every = 100
  c.model.backbone = "resnet50"
  c.model.width = 64
  c.model.dtype = "bfloat16"
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 2000
  c.clp.queue_size = 65536
  c.clp.momentum = 0.999
  return c
