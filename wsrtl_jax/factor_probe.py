"""`factor_probe(workdir)`: what moves a run's frozen output over a SynthAU clip.

A temporal objective (CLP's TCL, InfoNCE against neighbouring frames) learns whatever changes
between the frames of a clip; on SynthAU that is the AUs and the nuisance (head pose, camera
shift and zoom, exposure, gaze and blinks, an occluder, sensor noise). Here each factor is
varied alone over the fold's test clips, every other one held at its first frame's value, and
the output's change over the clip (1 - cos to the first frame, averaged over frames and clips)
is set beside the pixels' change: which factors the representation follows, and how strongly
per unit of pixel change. Frames are rendered by the generator (no JPEG round trip) and
centre-cropped as evaluation crops them.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import alignment, augment, input_pipeline
from data_pipeline.errors import UserError
from data_pipeline.synthau import generator, identity
from wsrtl_jax import parallel, plots, pretrained
from wsrtl_jax.evaluate import make_predict_fn


def change_over_clip(values: np.ndarray) -> float:
  """Mean of 1 - cos(v_t, v_0) over clips and frames, for values [clips, T, D]."""
  unit = values / np.maximum(np.linalg.norm(values, axis=-1, keepdims=True), 1e-12)
  return float(np.mean(1.0 - np.sum(unit[:, 1:] * unit[:, :1], axis=-1)))


def factor_probe(workdir: str, num_clips: int = 24, random_init: bool = False,
                 out_dir: str | None = None) -> dict:
  """Per factor: the mean absolute pixel change over the clip (0-255) and the change of the
  model's output (the AU code for CLP) from the first frame, x1000; writes `factors.json` and
  its bar chart `factors.png`."""
  config, model, state, step = pretrained.load_run(workdir, restore=not random_init)
  if not config.data.name.startswith("synthau"):
    raise UserError(f"factor_probe renders SynthAU clips; the run in '{workdir}' was trained on "
                    f"'{config.data.name}'")
  builder = input_pipeline.load_builder(config)
  store = builder.builder_config
  subjects = input_pipeline.fold_splits(config, builder).test.subjects[:num_clips]
  frame, crop, size = (store.image_size, augment.crop_size(store.image_size, config.data),
                       config.data.image_size)
  top = (frame - crop) // 2
  predict = make_predict_fn(model, size, output=lambda x: x)
  state = parallel.replicate(state, parallel.make_mesh(1))
  result = {"workdir": os.path.abspath(workdir), "step": step, "random_init": random_init,
            "clips": len(subjects), "frames": store.frames_per_clip, "factors": {}}
  people = [identity.sample_identity(identity.subject_index(n), store.seed) for n in subjects]
  for factor in generator.CLIP_FACTORS:
    clips = [generator.generate_clip(person, 0, store.frames_per_clip, frame, store.seed,
                                     varying=factor) for person in people]
    crops = np.stack([c["image"][:, top:top + crop, top:top + crop] for c in clips])
    landmarks = augment.to_input_pixels(np.concatenate([c["landmarks"] for c in clips]), top,
                                        crop, size)
    outputs = np.asarray(jax.device_get(predict(
        state, jnp.asarray(crops.reshape(-1, crop, crop, 3)),
        jnp.asarray(alignment.au_centres(landmarks)))))
    pixels = np.abs(crops[:, 1:].astype(np.float32) - crops[:, :1]).mean()
    result["factors"][factor] = {
        "pixel_change": round(float(pixels), 3),
        "code_change_x1000": round(1000 * change_over_clip(outputs.reshape(*crops.shape[:2], -1)),
                                   2)}
    print(f"{factor:22s} pixels {pixels:6.2f}  code x1000 "
          f"{result['factors'][factor]['code_change_x1000']:8.2f}", flush=True)
  out_dir = out_dir or os.path.join(workdir, "factors_random_init" if random_init else "factors")
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "factors.json"), "w") as f:
    json.dump(result, f, indent=2)
  print(f"-> {plots.plot_factors(result, os.path.join(out_dir, 'factors.png'))}", flush=True)
  return result
