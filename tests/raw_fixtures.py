"""Small trees in each raw dataset layout, made of SynthAU frames, with their ground truth.

Each writer fills a tmp folder and returns a `Truth`: every frame its label files name (subject,
sequence, frame number, the labels a reader must return, the landmarks written), where it is
broken on purpose, and the problems a reader must report. Tests compute their expected counts
from it, not from the reader's code.
"""
from __future__ import annotations

import dataclasses
import os
import struct

import cv2
import numpy as np

from data_pipeline.alignment import INDEX_49_IN_68, INDEX_66_IN_68
from data_pipeline.au_sets import AU_SETS
from data_pipeline.synthau.common import AUS
from data_pipeline.synthau.generator import generate_clip
from data_pipeline.synthau.identity import sample_identity

SIZE = 64
POINT_INDEX = {68: np.arange(68), 49: INDEX_49_IN_68, 66: INDEX_66_IN_68}
TAG_SLOTS, _TAG_SIDE = 8, 6
GFT_PARTS = {"train": ("001A", "002B", "003C"), "test": ("004A", "005B")}


@dataclasses.dataclass
class FrameTruth:
  subject: str
  sequence: str
  frame: int
  labels: np.ndarray                   # int8 [A], what a reader must return (-1 made unknown)
  intensity: np.ndarray | None = None  # float32 [A] for DISFA, -1 where made unknown
  landmarks: np.ndarray | None = None  # [68,2] the generator's points, if a row was written
  landmark_points: int = 0             # how many of them the row holds (68, 49, 66; 0: none)
  rgb: np.ndarray | None = None        # the pixels written (before JPEG/MJPG compression)
  dropped: str | None = None           # reason discover leaves it out
  unreadable: str | None = None        # reason read_images yields no image for it


@dataclasses.dataclass
class Truth:
  root: str
  frames: list[FrameTruth]
  subject_group: dict[str, str]
  problems: list[tuple[str, str, int]]       # (reason, path relative to root, frames), discover
  read_problems: list[tuple[str, str, int]]  # the same, from read_images

  def kept(self) -> list[FrameTruth]:
    return [f for f in self.frames if f.dropped is None]


@dataclasses.dataclass
class VideoTruth:
  sequence: str
  subject: str        # with identity_from_top_folder
  frames: int         # frames that can be decoded
  rgb: np.ndarray     # [frames, H, W, 3] what was written


# --------------------------------------------------------------------------------------------
# Writing helpers
# --------------------------------------------------------------------------------------------

def _clip(subject_index: int, clip_index: int, num_frames: int) -> dict[str, np.ndarray]:
  """A SynthAU clip whose frame t carries tag t % TAG_SLOTS (see frame_tag)."""
  clip = generate_clip(sample_identity(subject_index), clip_index, num_frames=num_frames,
                       image_size=SIZE)
  strip = clip["image"][:, 1:1 + _TAG_SIDE, :]
  strip[:] = 0
  for t in range(num_frames):
    left = _tag_left(t % TAG_SLOTS)
    strip[t, :, left:left + _TAG_SIDE] = 255
  return clip


def _tag_left(slot: int) -> int:
  return 2 + (_TAG_SIDE + 1) * slot


def frame_tag(rgb: np.ndarray) -> int:
  """Which frame of its clip (modulo TAG_SLOTS) an image is: the white square in a black strip
  along its top edge, which survives JPEG and video compression. Consecutive SynthAU frames are
  too alike to tell apart otherwise, and a reader that is one frame off must fail."""
  strip = rgb[1:1 + _TAG_SIDE].astype(float).mean(axis=(0, 2))
  return int(np.argmax([strip[_tag_left(k):_tag_left(k) + _TAG_SIDE].mean()
                        for k in range(TAG_SLOTS)]))


def _columns(aus: tuple[int, ...]) -> list[int]:
  return [AUS.index(au) for au in aus]


def _write_image(path: str, rgb: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  assert cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _write_video(path: str, frames: np.ndarray, fourcc: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 25, (SIZE, SIZE))
  assert writer.isOpened(), path
  for rgb in frames:
    writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
  writer.release()


def _truncate_avi(path: str, keep: int) -> None:
  """Cuts an AVI right after its `keep`-th frame chunk: the header still counts every frame."""
  with open(path, "rb") as f:
    data = f.read()
  offset = data.index(b"movi") + 4
  for _ in range(keep):
    size = struct.unpack("<I", data[offset + 4:offset + 8])[0]
    offset += 8 + size + (size & 1)
  with open(path, "wb") as f:
    f.write(data[:offset])


def _write_text(path: str, lines: list[str]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("".join(line + "\n" for line in lines))


def _coordinates(points: np.ndarray, n: int) -> list[str]:
  chosen = points[POINT_INDEX[n]]
  return [f"{v:.3f}" for v in np.concatenate([chosen[:, 0], chosen[:, 1]])]


def _landmark_header(n: int) -> str:
  return ",".join(["frame"] + [f"x{i}" for i in range(n)] + [f"y{i}" for i in range(n)])


def _landmark_lines(frames: list[FrameTruth], header: bool = False) -> list[str]:
  """Rows `frame,x..,y..` for the frames with landmarks, `frame,,,` (empty) for the others."""
  n = max(f.landmark_points for f in frames)
  lines = [_landmark_header(n)] if header else []
  for f in frames:
    cells = _coordinates(f.landmarks, n) if f.landmark_points else [""] * (2 * n)
    lines.append(",".join([str(f.frame)] + cells))
  return lines


# --------------------------------------------------------------------------------------------
# BP4D raw
# --------------------------------------------------------------------------------------------

# AU columns of the fixture's AU_OCC files: BP4D's 12 among others, like the real ones.
_BP4D_HEADER = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 27)
# subject, task, first frame, frames, landmark points (0: no landmarks file).
_BP4D_SEQUENCES = (("F001", "T1", 2440, 6, 68), ("F001", "T2", 100, 4, 49),
                   ("M007", "T1", 50, 5, 68), ("M011", "T1", 1, 5, 0), ("F003", "T1", 10, 5, 68),
                   ("F007", "T1", 200, 5, 68), ("F015", "T1", 30, 5, 68), ("F041", "T1", 1, 3, 68))


def write_bp4d_raw(root: str) -> Truth:
  """BP4D's release layout with landmarks. Broken on purpose: F001/T1 2441 AU2 = 9, 2443 has an
  empty landmark row; M007_T1.csv has a row whose frame is '52x' (52.jpg exists) and
  AU4 = 'x' at 53; F003_T1.csv lacks the AU23 column and has a non-numeric landmark at 11;
  F007/T1/202.jpg is missing; M011/T1/3.jpg is garbage and M011 has no landmarks file; F015
  frame 32's landmarks are all zeros; F041 is outside the standard partition. F001/T2's
  landmarks are 49 points, with a header row."""
  aus = AU_SETS["bp4d"]
  label_dir = os.path.join(root, "AUCoding", "AU_OCC")
  frames = []
  for index, (subject, task, start, count, points) in enumerate(_BP4D_SEQUENCES):
    clip = _clip(index, 0, count)
    occurrence = clip["occurrence"]
    header = [au for au in _BP4D_HEADER if not (subject == "F003" and au == 23)]
    rows = [",".join(["0"] + [str(au) for au in header])]
    seq = []
    for t in range(count):
      n = start + t
      values = {au: int(occurrence[t, AUS.index(au)]) if au in AUS else 0
                for au in header}
      labels = np.array([values.get(au, -1) for au in aus], np.int8)
      f = FrameTruth(subject, f"{subject}/{task}", n, labels, landmarks=clip["landmarks"][t],
                     landmark_points=points, rgb=clip["image"][t])
      cells = [str(values[au]) for au in header]
      if (subject, n) == ("F001", 2441):
        cells[header.index(2)] = "9"
        f.labels[aus.index(2)] = -1
      if (subject, n) == ("F001", 2443):
        f.landmark_points = 0
      if (subject, n) == ("M007", 53):
        cells[header.index(4)] = "x"
        f.labels[aus.index(4)] = -1
      rows.append(",".join([f"{n}x" if (subject, n) == ("M007", 52) else str(n)] + cells))
      if (subject, n) == ("M007", 52):
        f.dropped = "bad label row"
      if subject == "F041":
        f.dropped = "subject not in the standard partition"
      image = os.path.join(root, subject, task, f"{n}.jpg")
      if (subject, n) == ("F007", 202):
        f.dropped = "missing image"
      elif (subject, n) == ("M011", 3):
        os.makedirs(os.path.dirname(image), exist_ok=True)
        with open(image, "wb") as out:
          out.write(b"\xff\xd8 not really a jpeg")
        f.unreadable = "unreadable image"
      else:
        _write_image(image, clip["image"][t])
      seq.append(f)
    _write_text(os.path.join(label_dir, f"{subject}_{task}.csv"), rows)
    if points:
      lines = _landmark_lines(seq, header=(subject, task) == ("F001", "T2"))
      if subject == "F003":  # A non-numeric coordinate in frame 11's row.
        cells = lines[1].split(",")
        lines[1] = ",".join(cells[:5] + ["abc"] + cells[6:])
        seq[1].landmark_points = 0
      if subject == "F015":  # All zeros, as landmark tools write when they fail: no landmarks.
        lines[2] = ",".join(["32"] + ["0"] * 136)
        seq[2].landmark_points = 0
      _write_text(os.path.join(root, "landmarks", f"{subject}_{task}.csv"), lines)
    else:
      for f in seq:
        f.landmark_points = 0
    frames += seq
  occ = "AUCoding/AU_OCC"
  return Truth(
      root=root, frames=frames,
      subject_group={"F001": "1", "M007": "1", "M011": "2", "F003": "2", "F007": "3", "F015": "3"},
      problems=[("bad label row", f"{occ}/M007_T1.csv", 1),
                ("bad label row", f"{occ}/M007_T1.csv", 0),
                ("missing AU column", f"{occ}/F003_T1.csv", 0),
                ("bad landmark row", "landmarks/F003_T1.csv", 0),
                ("missing image", "F007/T1/202.jpg", 1),
                ("missing landmarks file", "landmarks/M011_T1.csv", 0),
                ("subject not in the standard partition", f"{occ}/F041_T1.csv", 3)],
      read_problems=[("unreadable image", "M011/T1/3.jpg", 1)])


# --------------------------------------------------------------------------------------------
# DISFA raw
# --------------------------------------------------------------------------------------------

_DISFA_FRAMES = 8
# subject -> how its frames are stored; landmark points (0: no landmarks file).
_DISFA_SUBJECTS = {"SN001": ("video", 66), "SN002": ("folder0", 68), "SN006": ("folder1", 68),
                   "SN011": ("truncated", 68), "SN003": ("video", 66), "SN004": ("garbage", 0),
                   "SN026": ("absent", 68)}
DISFA_TRUNCATED_AT = 5  # SN011's video decodes this many frames of 8.


def write_disfa_raw(root: str) -> Truth:
  """DISFA's release layout: left-camera MJPG videos, SN002 as a 0-based PNG frame folder and SN006
  as a 1-based JPEG one. Broken on purpose: SN001_au12.txt line 4 is '4,x'; SN003_au9.txt is
  missing; SN011's video is cut after 5 of its 8 frames; SN004's video is garbage and it has no
  landmarks file; SN026 has labels but no video; SN001 frame 2 has an empty landmark row."""
  aus = AU_SETS["disfa"]
  frames = []
  for index, (subject, (storage, points)) in enumerate(_DISFA_SUBJECTS.items()):
    clip = _clip(100 + index, 0, _DISFA_FRAMES)
    intensity = np.clip(np.round(clip["intensity"][:, _columns(aus)]), 0, 5).astype(np.int64)
    seq = []
    for t in range(_DISFA_FRAMES):
      value = intensity[t].astype(np.float32)
      f = FrameTruth(subject, subject, t + 1, (value >= 2).astype(np.int8), intensity=value,
                     landmarks=clip["landmarks"][t], landmark_points=points, rgb=clip["image"][t])
      seq.append(f)
    for j, au in enumerate(aus):
      lines = [f"{t + 1},{intensity[t, j]}" for t in range(_DISFA_FRAMES)]
      if (subject, au) == ("SN001", 12):
        lines[3] = "4,x"
        seq[3].labels[j], seq[3].intensity[j] = -1, -1
      if (subject, au) == ("SN003", 9):
        for f in seq:
          f.labels[j], f.intensity[j] = -1, -1
        continue
      _write_text(os.path.join(root, "ActionUnit_Labels", subject, f"{subject}_au{au}.txt"), lines)
    video = os.path.join(root, "Videos_LeftCamera", f"LeftVideo{subject}_comp.avi")
    if storage in ("video", "truncated"):
      _write_video(video, clip["image"], "MJPG")
    if storage == "truncated":
      _truncate_avi(video, DISFA_TRUNCATED_AT)
      for f in seq[DISFA_TRUNCATED_AT:]:
        f.unreadable = "frame missing from video"
    if storage == "garbage":
      os.makedirs(os.path.dirname(video), exist_ok=True)
      with open(video, "wb") as out:
        out.write(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
      for f in seq:
        f.unreadable = "unreadable video"
    if storage.startswith("folder"):
      first, extension = (0, "png") if storage == "folder0" else (1, "jpg")
      for t in range(_DISFA_FRAMES):
        _write_image(os.path.join(root, subject, f"{t + first}.{extension}"), clip["image"][t])
    if storage == "absent":
      for f in seq:
        f.dropped = "missing video"
    if subject == "SN001":
      seq[1].landmark_points = 0
    if points:
      _write_text(os.path.join(root, "landmarks", f"{subject}.csv"), _landmark_lines(seq))
    frames += seq
  labels, videos = "ActionUnit_Labels", "Videos_LeftCamera"
  return Truth(
      root=root, frames=frames,
      subject_group={"SN001": "1", "SN002": "1", "SN006": "2", "SN011": "2", "SN003": "3",
                     "SN004": "3"},
      problems=[("bad label row", f"{labels}/SN001/SN001_au12.txt", 0),
                ("missing AU file", f"{labels}/SN003/SN003_au9.txt", 0),
                ("missing video", f"{videos}/LeftVideoSN026_comp.avi", _DISFA_FRAMES),
                ("missing landmarks file", "landmarks/SN004.csv", 0)],
      read_problems=[("frame missing from video", f"{videos}/LeftVideoSN011_comp.avi",
                      _DISFA_FRAMES - DISFA_TRUNCATED_AT),
                     ("unreadable video", f"{videos}/LeftVideoSN004_comp.avi", _DISFA_FRAMES)])


# --------------------------------------------------------------------------------------------
# ME-GraphAU lists
# --------------------------------------------------------------------------------------------

def _list_frames(dataset: str, sequences: tuple[tuple[str, str, int], ...]) -> list[FrameTruth]:
  """Frames 0..count-1 of each (subject, task, count), written as img/<subject>/<task>/<i>.jpg."""
  aus = AU_SETS[dataset]
  frames = []
  for index, (subject, task, count) in enumerate(sequences):
    clip = _clip(200 + index, 1, count)
    for t in range(count):
      labels = clip["occurrence"][t, _columns(aus)].astype(np.int8)
      frames.append(FrameTruth(subject, f"{subject}/{task}", t, labels, rgb=clip["image"][t]))
  return frames


def _list_path(f: FrameTruth) -> str:
  return f"{f.sequence}/{f.frame}.jpg"


def _label_line(labels: np.ndarray) -> str:
  return " ".join(str(v) for v in labels)


def _write_list_pair(root: str, ds: str, split: str, fold: int, members: list[FrameTruth]) -> None:
  _write_text(os.path.join(root, "list", f"{ds}_{split}_img_path_fold{fold}.txt"),
              [_list_path(f) for f in members])
  _write_text(os.path.join(root, "list", f"{ds}_{split}_label_fold{fold}.txt"),
              [_label_line(f.labels) for f in members])


def _write_list_images(root: str, frames: list[FrameTruth]) -> None:
  for f in frames:
    if f.dropped is None:
      _write_image(os.path.join(root, "img", _list_path(f)), f.rgb)


def write_bp4d_lists(root: str) -> Truth:
  """ME-GraphAU's BP4D lists, 3 folds (each frame is in one test and two train lists). Broken on
  purpose: BP4D_train_label_fold2.txt flips AU1 of F001/T1/2.jpg; BP4D_train_label_fold3.txt
  lacks its last line; line 2 of BP4D_test_label_fold1.txt has 11 values; img/F015/T1/1.jpg is
  missing."""
  sequences = (("F001", "T1", 5), ("F001", "T2", 3), ("M007", "T1", 4), ("M011", "T1", 4),
               ("F003", "T1", 4), ("F007", "T1", 4), ("F015", "T1", 4))
  frames = _list_frames("bp4d", sequences)
  groups = {"F001": "1", "M007": "1", "M011": "2", "F003": "2", "F007": "3", "F015": "3"}
  flipped = next(f for f in frames if (f.sequence, f.frame) == ("F001/T1", 2))
  missing = next(f for f in frames if (f.sequence, f.frame) == ("F015/T1", 1))
  missing.dropped = "missing image"
  _write_list_images(root, frames)
  for fold in (1, 2, 3):
    test = [f for f in frames if groups[f.subject] == str(4 - fold)]
    train = [f for f in frames if groups[f.subject] != str(4 - fold)]
    _write_list_pair(root, "BP4D", "test", fold, test)
    _write_list_pair(root, "BP4D", "train", fold, train)
  label_dir = os.path.join(root, "list")
  _edit_lines(os.path.join(label_dir, "BP4D_train_label_fold2.txt"),
              lambda lines: [_label_line(np.where(np.arange(12) == 0, 1 - f.labels, f.labels))
                             if f is flipped else line
                             for f, line in zip([f for f in frames if groups[f.subject] != "2"],
                                                lines)])
  flipped.labels[0] = -1
  _edit_lines(os.path.join(label_dir, "BP4D_train_label_fold3.txt"), lambda lines: lines[:-1])
  _edit_lines(os.path.join(label_dir, "BP4D_test_label_fold1.txt"),
              lambda lines: lines[:1] + [" ".join(["0"] * 11)] + lines[2:])
  return Truth(root=root, frames=frames, subject_group=groups,
               problems=[("conflicting labels", "list/BP4D_train_label_fold2.txt", 0),
                         ("list length mismatch", "list/BP4D_train_img_path_fold3.txt", 0),
                         ("bad label row", "list/BP4D_test_label_fold1.txt", 0),
                         ("missing image", "img/F015/T1/1.jpg", 1)],
               read_problems=[])


def _edit_lines(path: str, edit) -> None:
  with open(path) as f:
    lines = f.read().splitlines()
  _write_text(path, edit(lines))


def write_gft_lists(root: str) -> Truth:
  """ME-GraphAU-style GFT lists with fold 1 only: its test subjects are 'test', the rest 'train'."""
  sequences = tuple((s, "T1", 3) for part in GFT_PARTS.values() for s in part)
  frames = _list_frames("gft", sequences)
  groups = {s: part for part, members in GFT_PARTS.items() for s in members}
  _write_list_images(root, frames)
  for split in ("train", "test"):
    _write_list_pair(root, "GFT", split, 1, [f for f in frames if groups[f.subject] == split])
  return Truth(root=root, frames=frames, subject_group=groups, problems=[], read_problems=[])


# --------------------------------------------------------------------------------------------
# frames.csv
# --------------------------------------------------------------------------------------------

def write_gft_csv(root: str, with_part: bool = True) -> Truth:
  """GFT as a frames.csv with a part column and 68-point landmarks. Broken on purpose: 001A/T1
  frame 2 has AU6 = 9, frame 3 AU10 = -1 and AU12 empty (all unknown); a row whose frame is 'x9';
  images/003C/T1/3.jpg is missing; 004A/T1 frame 2 has empty landmark cells."""
  aus = AU_SETS["gft"]
  groups = {s: part for part, members in GFT_PARTS.items() for s in members}
  header = (["path", "subject", "sequence", "frame"] + (["part"] if with_part else [])
            + [f"AU{au}" for au in aus] + _landmark_header(68).split(",")[1:])
  rows, frames = [",".join(header)], []
  sequences = [("001A", "T1"), ("001A", "T2")] + [(s, "T1") for s in groups if s != "001A"]
  for index, (subject, task) in enumerate(sequences):
    clip = _clip(300 + index, 2, 4)
    for t in range(4):
      n = t + 1
      labels = clip["occurrence"][t, _columns(aus)].astype(np.int8)
      f = FrameTruth(subject, f"{subject}/{task}", n, labels.copy(),
                     landmarks=clip["landmarks"][t], landmark_points=68, rgb=clip["image"][t])
      cells = [str(v) for v in labels]
      if (f.sequence, n) == ("001A/T1", 2):
        cells[aus.index(6)] = "9"
      if (f.sequence, n) == ("001A/T1", 3):
        cells[aus.index(10)], cells[aus.index(12)] = "-1", ""
      f.labels[[i for i, c in enumerate(cells) if c in ("9", "-1", "")]] = -1
      coordinates = _coordinates(f.landmarks, 68)
      if (f.sequence, n) == ("004A/T1", 2):
        coordinates, f.landmark_points = [""] * 136, 0
      rel = f"images/{subject}/{task}/{n}.jpg"
      rows.append(",".join([rel, subject, task, str(n)] + ([groups[subject]] if with_part else [])
                           + cells + coordinates))
      if (f.sequence, n) == ("003C/T1", 3):
        f.dropped = "missing image"
      else:
        _write_image(os.path.join(root, rel), clip["image"][t])
      frames.append(f)
  bad = rows[-1].split(",")
  bad[3] = "x9"
  rows.append(",".join(bad))
  _write_text(os.path.join(root, "frames.csv"), rows)
  return Truth(root=root, frames=frames, subject_group=groups,
               problems=[("bad row", "frames.csv", 1),
                         ("missing image", "images/003C/T1/3.jpg", 1)],
               read_problems=[])


# --------------------------------------------------------------------------------------------
# Unlabelled face videos
# --------------------------------------------------------------------------------------------

def write_face_videos(root: str) -> tuple[list[VideoTruth], list[str]]:
  """VoxCeleb-style <id>/<youtube_id>/<clip>: two identities, each with two short videos, one of
  id00012's as a frame folder, one of id00015's cut after 5 of its 8 frames (its header still
  says 8). Also a garbage .mkv, a text file and two stray images. Returns the sequences, and
  the paths (relative to root) of the videos that cannot be read."""
  truths = []
  layout = (("id00012/abcDEF123/00001.mp4", 6, None), ("id00012/ghiJKL456/00002", 5, None),
            ("id00015/mnoPQR789/00001.AVI", 6, None), ("id00015/stuVWX012/00003.avi", 8, 5))
  for index, (rel, count, keep) in enumerate(layout):
    clip = _clip(400 + index, 3, count)
    path = os.path.join(root, rel)
    extension = os.path.splitext(rel)[1]
    if not extension:
      for t in range(count):
        _write_image(os.path.join(path, f"{t + 1:04d}.jpg"), clip["image"][t])
    else:
      _write_video(path, clip["image"], "mp4v" if extension == ".mp4" else "MJPG")
    if keep:
      _truncate_avi(path, keep)
    decodable = keep or count
    truths.append(VideoTruth(os.path.splitext(rel)[0], rel.split("/")[0], decodable,
                             clip["image"][:decodable]))
  _write_text(os.path.join(root, "id00015", "stuVWX012", "notes.txt"), ["not a video"])
  # Single images are not frame folders, nor is an image with another name among the frames.
  _write_image(os.path.join(root, "id00012", "poster-01.jpg"), truths[0].rgb[0])
  _write_image(os.path.join(root, "id00012", "ghiJKL456", "00002", "cover.jpg"), truths[0].rgb[0])
  garbage = "id00015/brokenXYZ/00009.mkv"
  os.makedirs(os.path.dirname(os.path.join(root, garbage)))
  with open(os.path.join(root, garbage), "wb") as out:
    out.write(b"\x1aE\xdf\xa3" + bytes(range(256)) * 8)
  return truths, [garbage]
