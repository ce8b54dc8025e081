r"""WSRTL on BP4D, the paper's protocol: subject-exclusive 3-fold cross-validation (`data.fold`
1, 2, 3; the subjects of each part are in docs/DATA.md), 12 AUs, F1 at 0.5 on the test fold, the
checkpoint chosen on validation subjects carved from the training folds.

Faces aligned to 256 px (`prepare --dataset bp4d`), random 224 crops, ResNet-50, every training
frame labelled, and the same frames, as pairs, for the auxiliary tasks and the mean teacher.
Sized for one accelerator host (8 devices: 16 + 16 per device). The paper reports avg F1 65.9.

  python -m wsrtl_jax prepare --dataset bp4d --manual_dir /data/BP4D
  python -m wsrtl_jax train --config configs/bp4d_wsrtl.py --config.data.fold=2 --workdir ...

Like the paper, start from ImageNet weights: convert torchvision's ResNet-50 once (the backbone
pads as torchvision does, `model.padding=torch`, so they import as they are), then every fold
and seed starts from them, and `protocol` prints the table beside the paper's row:

  python -m wsrtl_jax import_weights --torchvision resnet50-19c8e357.pth --backbone resnet50 \
      --out W/imagenet_resnet50
  python -m wsrtl_jax protocol --config configs/bp4d_wsrtl.py --workdir W/bp4d \
      --config.model.init_from=W/imagenet_resnet50 --seeds 0,1,2
"""
import ml_collections

from configs import synthau_wsrtl


def get_config() -> ml_collections.ConfigDict:
  c = synthau_wsrtl.get_config()
  c.num_train_steps = 20000
  c.checkpoint_every = 2000
  c.log_every = 100
  c.global_batch_size = 128
  c.wsrtl.pairs_batch_size = 128
  c.wsrtl.inpainting.weight = 1.0  # The paper's sum of the losses; SynthAU's small network
  c.wsrtl.flow.weight = 1.0  # and short run take 0.2 (configs/synthau_wsrtl.py).

  c.paper_row = "wsrtl_bp4d"
  c.data.name = "bp4d"
  c.data.fold = 1
  c.data.num_val_subjects = 3  # Of the ~27 training subjects of a fold.
  c.data.label_fraction = 1.0
  c.data.image_size = 224
  c.data.crop_fraction = 0.875  # 224 of the 256 px aligned face.
  c.data.shuffle_buffer = 50000
  c.data.pair_gap = 4  # 25 fps video: pairs 0.16 s apart.

  c.model.backbone = "resnet50"
  c.model.padding = "torch"  # torchvision's, so that its ImageNet weights import as they are.
  c.model.width = 64
  c.model.dtype = "bfloat16"
  c.model.token_stage = 2  # Stride 16: a 14 x 14 map at 224 px.
  c.model.token_dim = 256
  c.model.relation_heads = 8
  c.model.inpaint_upsamples = 2  # Reconstruct at full size.

  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 1000
  c.wsrtl.semi.ema_decay = 0.999
  c.wsrtl.semi.rampup_steps = 4000
  c.eval.batch_size = 256
  return c
