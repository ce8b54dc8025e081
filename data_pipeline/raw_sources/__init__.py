"""Readers for the AU datasets in the layouts users have (docs/DATA.md, "Layouts `prepare`
reads"), and for folders of face videos. numpy and OpenCV only; the tfds builders consume what
these find.

`discover` reads every label and landmark file of a dataset into a `SourceIndex`. It raises
UserError only when nothing can be built; every other fault becomes a `Problem` (the file, what
is wrong, how many frames it cost) and the rest builds. `read_images` then decodes the pixels of
one sequence. A Problem reads as one line: f"{problem.path}: {problem.message}".

The first layout whose marker is in manual_dir is read, in this order (modules frames_csv,
lists, bp4d_raw, disfa_raw):
  csv        frames.csv (the user's own table: the most explicit choice)
  lists      list/<DS>_{train,test}_img_path_fold<k>.txt (ME-GraphAU's; its DISFA folder also
             holds ActionUnit_Labels/, so the lists come before the raw layouts)
  bp4d_raw   AUCoding/AU_OCC/ (BP4D only)
  disfa_raw  ActionUnit_Labels/ (DISFA only)
`layouts` picks one, `videos` lists folders of face videos, `pixels` reads the images; `records`
holds the types they return, `common` the parsing and file checks the readers share.

Conventions: labels are int8, 1 present, 0 absent, -1 unknown; DISFA intensities are float32 0-5,
-1 where unknown; landmarks are float32 [68,2] source-image pixels, converted from 49 or 66 points
by `alignment.convert_to_68`, None for an empty row (or one of all zeros, which landmark tools
write when they fail).
"""
from __future__ import annotations

from data_pipeline.raw_sources.layouts import discover
from data_pipeline.raw_sources.pixels import read_images
from data_pipeline.raw_sources.records import (DATASETS, STANDARD_PARTS, FrameSource, Problem,
                                               SequenceSource, SourceIndex, standard_group)
from data_pipeline.raw_sources.videos import discover_videos

__all__ = ["DATASETS", "STANDARD_PARTS", "FrameSource", "Problem", "SequenceSource", "SourceIndex",
           "discover", "discover_videos", "read_images", "standard_group"]
