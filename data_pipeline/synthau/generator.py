"""SynthAU: procedural face videos with known facial action-unit (AU) intensities.

Numpy only. A clip is produced in four steps, each driven by its own deterministic RNG stream:
  1. AU intensities over time: overlapping expression events (smile, surprise, ...) with
     onset-apex-offset envelopes, so AUs co-occur and have imbalanced base rates like BP4D
     (``expressions``, ``timelines``; the person comes from ``identity``).
  2. Head pose over time (smooth yaw/pitch/roll, ``timelines``) and a nuisance ``Scene`` (light,
     background, camera jitter, gaze, blinks, occluder, sensor noise; ``scene``).
  3. 68 iBUG landmarks: a parametric 3-D face of the identity, deformed by the AUs, rotated and
     projected orthographically into the image (``face_model``).
  4. Rendering FROM those landmarks (curves fitted through them, local frames spanned by them), so
     pixels and landmarks agree (``renderer``, painting with ``canvas`` and ``features``).

Conventions: landmarks are (x, y) pixels with pixel centres at integer coordinates, y down.
Pose is (yaw, pitch, roll) in degrees: yaw > 0 turns the face towards image right, pitch > 0
tilts it down, roll > 0 rotates it clockwise in the image.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline.synthau.common import _rng
from data_pipeline.synthau.identity import Identity
from data_pipeline.synthau.renderer import render_frames
from data_pipeline.synthau.scene import sample_scene
from data_pipeline.synthau.timelines import sample_intensity, sample_pose

_CLIP_TAG = 0xC1


# Factor -> the per-frame Scene fields it varies over a clip ("AUs" and "head pose" vary the
# intensity and pose tracks; "all" is the clip as sampled).
_SCENE_FACTORS = {"camera (shift, zoom)": ("offset", "zoom"), "exposure": ("exposure",),
                  "gaze, blinks": ("gaze", "blink"), "occluder": ("occ_in",),
                  "sensor noise": ("noise_offset",)}
CLIP_FACTORS: tuple[str, ...] = ("all", "AUs", "head pose", *_SCENE_FACTORS)


def generate_clip(identity: Identity, clip_index: int, num_frames: int = 32, image_size: int = 128,
                  seed: int = 0, varying: str = "all") -> dict[str, np.ndarray]:
  """One clip: image [T,H,W,3] uint8, landmarks [T,68,2] float32, intensity [T,15] float32 in
  [0,5], occurrence [T,15] uint8 (= intensity >= 2), pose [T,3] float32 (yaw, pitch, roll deg).

  `varying` (one of CLIP_FACTORS) keeps just that factor changing over time and holds every
  other one at its first frame's value: the same person, scene and landmarks of the first frame
  as the clip, its pixels to a grey level (a chunk renders at its frames' mean scale)."""
  if varying not in CLIP_FACTORS:
    raise ValueError(f"varying={varying!r}; choose one of {', '.join(CLIP_FACTORS)}")
  rng = _rng(seed, identity.subject_index, clip_index, _CLIP_TAG)
  intensity = sample_intensity(rng, identity, num_frames)
  pose = sample_pose(rng, num_frames)
  scene = sample_scene(rng, num_frames)
  if varying != "all":
    held = lambda a: np.repeat(a[:1], len(a), axis=0)
    scene = dataclasses.replace(scene, **{
        f: getattr(scene, f) if f in _SCENE_FACTORS.get(varying, ()) else held(getattr(scene, f))
        for fields in _SCENE_FACTORS.values() for f in fields})
    intensity = intensity if varying == "AUs" else held(intensity)
    pose = pose if varying == "head pose" else held(pose)
  image, landmarks = render_frames(identity, intensity, pose, scene, image_size)
  return {"image": image, "landmarks": landmarks, "intensity": intensity,
          "occurrence": (intensity >= 2).astype(np.uint8), "pose": pose}
