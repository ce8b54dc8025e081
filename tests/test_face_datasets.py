"""Fixture trees in each raw layout build into stores whose frames, positives, folds and validation
subjects are exactly what the fixture wrote; bad input fails clearly and leaves no store."""
import os
import re
import sys

import cv2

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipeline import input_pipeline
from data_pipeline.au_sets import AU_SETS
from data_pipeline import prepare
from data_pipeline.errors import UserError
from tests import raw_fixtures
from tests.helpers import run_cli, tiny_config


def _store(name: str, data_dir: str, split: str) -> list[dict]:
  builder = tfds.builder(name, data_dir=data_dir)
  ds = builder.as_dataset(split=split, shuffle_files=False,
                          decoders={"image": tfds.decode.SkipDecoding()})
  return list(ds.as_numpy_iterator())


def _subjects(records) -> set[str]:
  return {r["subject"].decode() for r in records}


def _readable(truth) -> list:
  return [f for f in truth.kept() if f.unreadable is None]


def _positives(frames, aus) -> dict[str, int]:
  labels = np.array([f.labels for f in frames])
  return {f"AU{a}": int((labels[:, i] == 1).sum()) for i, a in enumerate(aus)}


@pytest.fixture(scope="module")
def bp4d(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("bp4d_raw"))
  data_dir = str(tmp_path_factory.mktemp("bp4d_store"))
  truth = raw_fixtures.write_bp4d_raw(root)
  return truth, data_dir, prepare.prepare("bp4d", root, data_dir)


# Fold k tests on part 4-k; validation: 10% (at least one) of the sorted training subjects,
# evenly spaced, so the first of them here.
BP4D_FOLDS = {1: ({"F007", "F015"}, {"F001"}, {"F003", "M007", "M011"}),
              2: ({"M011", "F003"}, {"F001"}, {"F007", "F015", "M007"}),
              3: ({"F001", "M007"}, {"F003"}, {"F007", "F015", "M011"})}


@pytest.mark.parametrize("fold", [1, 2, 3])
def test_bp4d_folds_hold_exactly_the_frames_written(bp4d, fold):
  truth, data_dir, _ = bp4d
  readable = _readable(truth)
  for split, subjects in zip(("test", "validation", "train"), BP4D_FOLDS[fold]):
    records = _store(f"bp4d/fold{fold}", data_dir, split)
    assert _subjects(records) == subjects
    expected = {(f.sequence, f.frame): f for f in readable if f.subject in subjects}
    got = {(r["sequence"].decode(), int(r["frame"])): r for r in records}
    assert got.keys() == expected.keys(), split
    for key, record in got.items():
      np.testing.assert_array_equal(record["au_occurrence"], expected[key].labels)
    # Sequences are stored in frame order: pairs and clips are cut from it.
    for sequence in {k[0] for k in got}:
      frames = [int(r["frame"]) for r in records if r["sequence"].decode() == sequence]
      assert frames == sorted(frames)


def test_bp4d_summary_counts(bp4d):
  truth, _, summary = bp4d
  readable = _readable(truth)
  assert summary["subjects"] == 6 and summary["sequences"] == 7
  assert summary["frames"] == len(readable) == 32
  assert summary["positives_per_au"] == _positives(readable, AU_SETS["bp4d"])
  assert summary["unknown_per_au"]["AU2"] == 1 and summary["unknown_per_au"]["AU23"] == 5
  # Empty, all-zero and unparsable landmark rows borrow a neighbour's; M011 has no landmarks file.
  assert summary["frames_without_landmarks"] == {"neighbour": 3, "detected": 4}
  assert summary["frames_skipped"] == {"bad label row": 1, "missing image": 1,
                                       "subject not in the standard partition": 3,
                                       "unreadable image": 1}
  assert any("M007_T1.csv" in p and "52x" in p for p in summary["problems"])


def _bp4d_without_faces(root: str, subjects: tuple[str, ...]):
  """The BP4D fixture tree where `subjects` have no landmarks file and only flat grey frames: no
  face can be found in them, so alignment drops every one."""
  truth = raw_fixtures.write_bp4d_raw(root)
  for f in truth.frames:
    image = os.path.join(root, f.subject, f.sequence.split("/")[1], f"{f.frame}.jpg")
    if f.subject in subjects and os.path.exists(image):
      cv2.imwrite(image, np.full((raw_fixtures.SIZE, raw_fixtures.SIZE, 3), 128, np.uint8))
  for subject in subjects:
    path = os.path.join(root, "landmarks", f"{subject}_T1.csv")
    if os.path.exists(path):
      os.remove(path)
  return truth


def test_a_held_out_subject_without_a_face_is_replaced_and_every_fold_builds(tmp_path):
  """F003 would be fold 3's only validation subject (BP4D_FOLDS); it loses every frame, so
  validation is held out of the training subjects that have frames, and the summary says who
  lost what."""
  truth = _bp4d_without_faces(str(tmp_path / "raw"), ("F003",))
  summary = prepare.prepare("bp4d", truth.root, str(tmp_path / "store"))
  assert summary["failed"] == {}
  assert summary["subjects_without_frames"] == {"F003": {"no face found": 5}}
  subjects = summary["split_subjects"]
  assert subjects["bp4d/fold3"] == {"train": ["F015", "M011"], "validation": ["F007"],
                                    "test": ["F001", "M007"]}
  assert subjects["bp4d/fold2"]["test"] == ["M011"]
  for fold, validation in ((1, "F001"), (2, "F001"), (3, "F007")):
    records = _store(f"bp4d/fold{fold}", str(tmp_path / "store"), "validation")
    assert _subjects(records) == {validation}
  text = prepare.format_summary(summary).splitlines()
  assert "  subjects without frames: F003 (5 no face found)" in text
  assert ("  bp4d/fold3: train 9 frames of 2 subjects, validation 4 frames of 1 subject (F007), "
          "test 14 frames of 2 subjects (F001, M007)") in text


def test_a_fold_whose_test_part_has_no_frames_is_one_line_and_the_others_build(tmp_path):
  truth = _bp4d_without_faces(str(tmp_path / "raw"), ("F007", "F015"))
  data_dir = str(tmp_path / "store")
  result = run_cli([sys.executable, "-m", "wsrtl_jax", "prepare", "--dataset", "bp4d",
                    "--manual_dir", truth.root, "--data_dir", data_dir])
  assert result.returncode == 2, result.stderr
  line = ("bp4d/fold1 not built: the test split would have no frames: its subjects F007 "
          "(4 no face found), F015 (5 no face found) have none")
  assert result.stdout.splitlines().count(line) == 1  # As it happens; the summary repeats it.
  assert f"  {line}" in result.stdout.splitlines()
  assert "Traceback" not in result.stdout + result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "error: bp4d/fold1 not built (why above); the other configs are ready")
  assert not tfds.builder("bp4d/fold1", data_dir=data_dir).is_prepared()
  for fold in (2, 3):
    builder = tfds.builder(f"bp4d/fold{fold}", data_dir=data_dir)
    assert builder.is_prepared() and builder.info.splits["test"].num_examples > 0


def test_disfa_video_and_frame_folders(tmp_path):
  truth = raw_fixtures.write_disfa_raw(str(tmp_path / "disfa"))
  data_dir = str(tmp_path / "store")
  summary = prepare.prepare("disfa/fold1", truth.root, data_dir)
  readable = _readable(truth)
  assert summary["frames"] == len(readable) == 5 * 8 + 5 - 8
  assert summary["positives_per_au"] == _positives(readable, AU_SETS["disfa"])
  assert summary["frames_skipped"] == {"frame missing from video": 3, "missing video": 8,
                                       "unreadable video": 8}
  records = _store("disfa/fold1", data_dir, "train") + _store("disfa/fold1", data_dir, "validation")
  by_key = {(r["sequence"].decode(), int(r["frame"])): r for r in records}
  for f in readable:
    if (f.sequence, f.frame) in by_key:
      np.testing.assert_array_equal(by_key[f.sequence, f.frame]["au_intensity"], f.intensity)
  assert _subjects(_store("disfa/fold1", data_dir, "test")) == {"SN003"}  # SN004 unreadable.


def test_lists_and_csv_layouts(tmp_path):
  lists = raw_fixtures.write_bp4d_lists(str(tmp_path / "lists"))
  summary = prepare.prepare("bp4d/fold2", lists.root, str(tmp_path / "s1"))
  assert summary["frames"] + summary["frames_skipped"].get("no face found", 0) == len(
      _readable(lists))
  assert summary["frames_skipped"]["missing image"] == 1
  assert summary["frames_without_landmarks"]["detected"] == summary["frames"]
  assert summary["unknown_per_au"]["AU1"] == 1  # The label the lists disagree on.
  gft = raw_fixtures.write_gft_csv(str(tmp_path / "gft"))
  summary = prepare.prepare("gft", gft.root, str(tmp_path / "s2"))
  assert summary["frames"] == len(_readable(gft)) == 23
  assert summary["splits"]["gft/official"] == {"test": 8, "train": 7, "validation": 8}
  assert summary["frames_skipped"] == {"bad row": 1, "missing image": 1}
  assert summary["positives_per_au"] == _positives(_readable(gft), AU_SETS["gft"])


def test_face_videos_stream_pairs_and_clips(tmp_path):
  truths, _ = raw_fixtures.write_face_videos(str(tmp_path / "videos"))
  data_dir = str(tmp_path / "store")
  summary = prepare.prepare("face_videos/voxceleb", str(tmp_path / "videos"), data_dir)
  kept = summary["frames"]
  assert kept + summary["frames_skipped"].get("no face found", 0) == sum(t.frames for t in truths)
  assert kept >= 0.8 * sum(t.frames for t in truths)
  assert summary["subjects"] == 2
  config = tiny_config(**{"data.name": "face_videos/voxceleb", "data.data_dir": data_dir,
                          "data.clip_length": 3, "data.pair_gap": 1})
  builder = input_pipeline.load_builder(config)
  splits = input_pipeline.fold_splits(config, builder)
  for kind, frames in (("pairs", 2), ("clips", 3)):
    batch = next(input_pipeline.train_stream(config, builder, splits, kind, 4))
    assert batch["image"].shape == (4, frames, 230, 230, 3)  # 0.9 of the stored 256 px.
    assert (np.diff(batch["frame"], axis=1) == (1 if kind == "pairs" else 1)).all()


def test_bad_manual_dir_fails_clearly_and_writes_no_store(tmp_path):
  data_dir = tmp_path / "store"
  (tmp_path / "empty").mkdir()
  for manual_dir in (tmp_path / "nowhere", tmp_path / "empty"):  # The same error for both.
    with pytest.raises(UserError, match=re.escape(
        f"--manual_dir '{manual_dir}' does not exist, is not a folder or is empty: expected the "
        "folder holding your copy of bp4d")):
      prepare.prepare("bp4d", str(manual_dir), str(data_dir))
    assert not data_dir.exists()
  wrong = tmp_path / "wrong"
  (wrong / "some" / "folder").mkdir(parents=True)
  (wrong / "notes.txt").write_text("not a dataset")
  with pytest.raises(UserError, match=str(wrong)):
    prepare.prepare("bp4d", str(wrong), str(data_dir))
  assert not (data_dir / "bp4d").exists() or not any(
      p.name[0].isdigit() or p.name.startswith("incomplete")
      for p in (data_dir / "bp4d").rglob("*") if p.is_dir())


KILL_AFTER_THIRD_SEQUENCE = """
import os, sys
from data_pipeline import aligned_cache
save, saved = aligned_cache.save, []
def save_then_die(*args):
  save(*args)
  saved.append(1)
  if len(saved) == 3:
    os._exit(9)  # As abrupt as SIGKILL: no cleanup runs.
aligned_cache.save = save_then_die
from wsrtl_jax import cli
cli.run(sys.argv[1:])
"""


def test_interrupted_prepare_resumes_without_redoing_work(tmp_path):
  """A run killed after three sequences: the rerun keeps them and the store is the one an
  uninterrupted run makes."""
  truth = raw_fixtures.write_disfa_raw(str(tmp_path / "disfa"))
  args = ["prepare", "--dataset", "disfa", "--manual_dir", truth.root,
          "--data_dir", str(tmp_path / "store")]
  killed = run_cli([sys.executable, "-c", KILL_AFTER_THIRD_SEQUENCE] + args)
  assert killed.returncode == 9
  cached = list((tmp_path / "store" / "downloads").rglob("*.npz"))
  assert len(cached) == 3
  assert not (tmp_path / "store" / "disfa" / "fold1" / "1.0.0").exists()
  first = {p: p.stat().st_mtime_ns for p in cached}
  done = run_cli([sys.executable, "-m", "wsrtl_jax"] + args)
  assert done.returncode == 0, done.stderr
  assert all(p.stat().st_mtime_ns == t for p, t in first.items())  # Not redone.
  assert "disfa: 5 subjects, 5 sequences, 37 frames" in done.stdout
  clean = str(tmp_path / "clean")
  prepare.prepare("disfa", truth.root, clean)
  for fold in (1, 2, 3):
    for split in ("train", "validation", "test"):
      a = _store(f"disfa/fold{fold}", str(tmp_path / "store"), split)
      b = _store(f"disfa/fold{fold}", clean, split)
      assert [(r["sequence"], r["frame"], r["image"]) for r in a] == [
          (r["sequence"], r["frame"], r["image"]) for r in b]
