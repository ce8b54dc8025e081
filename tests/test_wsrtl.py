"""WSRTL: the pieces of the step (token sampling, AU region masks, flow targets, face region,
pseudo-labels) and the whole sharded step with each loss switched on or off by the config."""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import synthau_wsrtl
from data_pipeline.alignment import MEAN_TEMPLATE_68
from data_pipeline.au_sets import CENTRE_AUS, aus_of
from data_pipeline.config_loading import load_config
from tests.helpers import ROOT, cli_args, run_cli
from wsrtl_jax import bench, evaluate, methods, models, parallel, train_state
from wsrtl_jax.methods import wsrtl as wsrtl_method
from jax.sharding import PartitionSpec as P
from wsrtl_jax.logging_utils import read_jsonl
from wsrtl_jax.parallel import AXIS
from wsrtl_jax.models.resnet import IMAGE_MEAN, normalize_image
from wsrtl_jax.models.wsrtl import tent_weights

NUM_AUS = len(CENTRE_AUS)


def test_tent_weights_read_cell_centres_and_interpolate_between():
  stride, h, w = 4, 3, 5
  fmap = jnp.arange(h * w, dtype=jnp.float32).reshape(1, h, w, 1)
  centre = lambda j, i: (j * stride + (stride - 1) / 2, i * stride + (stride - 1) / 2)
  points = jnp.array([[centre(2, 1), centre(4, 0), (np.mean([centre(1, 1)[0], centre(2, 1)[0]]),
                                                     centre(1, 1)[1])]])
  sampled = jnp.einsum("bphw,bhwc->bpc", tent_weights(points, h, w, stride), fmap)[0, :, 0]
  np.testing.assert_allclose(sampled, [1 * w + 2, 0 * w + 4, 1 * w + 1.5], atol=1e-6)


def test_region_mask_covers_both_centres_of_the_chosen_aus_only():
  b, a, size, side = 6, 5, 64, 6.0
  rows = 12.0 + 9 * np.arange(a)  # Patches of 7 x 7 px (|d| <= 3) never overlap.
  centres = np.stack([np.stack([[10.0, 40.0], [y, y]], -1) for y in rows])  # [A, 2, 2]
  centres = jnp.asarray(np.repeat(centres[None], b, axis=0))
  scores = jax.random.uniform(jax.random.key(0), (b, a))
  mask = np.asarray(wsrtl_method.region_mask(scores, centres, 2, side, size))
  covered = np.array([[[mask[n, int(y), int(x)] for x, y in np.asarray(centres[n, i])]
                       for i in range(a)] for n in range(b)])  # [B, A, 2]
  assert (covered.all(-1) == covered.any(-1)).all()  # An AU is masked at both centres or none.
  assert (covered.all(-1).sum(-1) == 2).all()
  assert mask.sum(axis=(1, 2)).tolist() == [2 * 2 * 7 * 7] * b  # |d| <= 3 px: 7 x 7 per centre.
  assert len({tuple(np.flatnonzero(c.all(-1))) for c in covered}) > 1  # Drawn per image.


def photo(size=64):
  with Image.open(f"{ROOT}/tests/data/astronaut_face.jpg") as image:
    return np.asarray(image.convert("RGB").resize((size + 8, size + 8)), np.float32)


def test_flow_target_of_a_shift_is_the_shift_in_cells():
  image = photo()
  pair = np.stack([image[4:-4, 4:-4], image[4:-4, 2:-6]])[None]  # Content moves 2 px right.
  config = synthau_wsrtl.get_config().wsrtl.flow
  config.target, config.align = "pair", False
  target = np.asarray(wsrtl_method.flow_target(jnp.asarray(pair), LANDMARKS, 4, config))
  assert target.shape == (1, 16, 16, 2)
  np.testing.assert_allclose(np.median(target[0, 3:-3, 3:-3], axis=(0, 1)), [0.5, 0.0],
                             atol=0.05)


# Landmarks of both frames of a pair of 64 px faces, spread over the face (the same in both).
LANDMARKS = jnp.asarray(np.stack([np.stack(np.meshgrid(np.linspace(16, 48, 17),
                                                       np.linspace(16, 48, 4)), -1)
                                  .reshape(68, 2)] * 2)[None], jnp.float32)


def test_aligned_flow_target_leaves_out_the_head_motion_and_is_zero_for_a_frame_to_itself():
  image = photo()
  config = synthau_wsrtl.get_config().wsrtl.flow
  config.target = "pair"
  assert config.align
  itself = np.stack([image[4:-4, 4:-4]] * 2)[None]
  np.testing.assert_allclose(wsrtl_method.flow_target(jnp.asarray(itself), LANDMARKS, 4, config),
                             0.0, atol=1e-3)
  moved = np.stack([image[4:-4, 4:-4], image[4:-4, 2:-6]])[None]  # The head moves 2 px right,
  landmarks = LANDMARKS.at[:, 1, :, 0].add(2.0)  # and its landmarks with it.
  target = np.asarray(wsrtl_method.flow_target(jnp.asarray(moved), landmarks, 4, config))
  assert np.abs(np.median(target[0, 3:-3, 3:-3], axis=(0, 1))).max() < 0.05


def test_template_flow_is_zero_for_the_mean_face_and_follows_a_landmark_that_moves():
  template = np.asarray(MEAN_TEMPLATE_68, np.float32) * 40 + 12  # The mean face at 64 px,
  flow = np.asarray(wsrtl_method.template_flow(jnp.asarray(template[None]), 64, 4))
  np.testing.assert_allclose(flow, 0.0, atol=1e-4)  # anywhere on the image: no deformation.
  lowered = template.copy()
  lowered[8, 1] += 4.0  # The chin 4 px (one cell) lower: AU26's jaw drop.
  flow = np.asarray(wsrtl_method.template_flow(jnp.asarray(lowered[None]), 64, 4))
  j, i = (lowered[8] - 1.5) / 4
  cell = flow[0, int(round(i)), int(round(j))]
  assert cell[1] > 0.5 and abs(cell[0]) < 0.2  # Downwards, in cells; the shift of the
  assert np.abs(flow[0, 4, 4]).max() < 0.05  # similarity it causes is small elsewhere.


def test_face_region_is_the_widened_landmark_box_in_cells():
  landmarks = jnp.asarray([[[20.0, 24.0], [43.0, 47.0]]])  # A 23 x 23 px box.
  region = np.asarray(wsrtl_method.face_region(landmarks, 64, 4, margin=0.1))
  rows, cols = np.flatnonzero(region[0].any(1)), np.flatnonzero(region[0].any(0))
  # Cell centres 4j + 1.5 inside x [17.7, 45.3], y [19.4, 49.3].
  assert (cols.min(), cols.max()) == (5, 10) and (rows.min(), rows.max()) == (5, 11)


def test_pseudo_labels_keep_only_confident_teacher_probabilities():
  probs = jnp.array([[0.95, 0.5, 0.05, 0.8, 0.2]])
  assert wsrtl_method.pseudo_labels(probs, 0.8, 0.2).tolist() == [[1, -1, 0, -1, -1]]


def test_inpainting_target_is_the_view_the_student_was_given_before_masking():
  config, size = tiny_config(), 32
  rng = np.random.default_rng(0)
  weak = jnp.asarray(rng.uniform(0, 255, (4, size, size, 3)), jnp.float32)
  centres = jnp.asarray(rng.uniform(4, size - 4, (4, NUM_AUS, 2, 2)), jnp.float32)
  draw = jnp.asarray(rng.random((4, 3 + NUM_AUS)), jnp.float32)
  views = wsrtl_method.student_views(weak, centres, draw, config.wsrtl, size)
  mask = np.asarray(views["mask"])
  assert 0 < mask.mean() < 0.9
  assert np.abs(np.asarray(views["view"]) - np.asarray(weak)).mean() > 1  # Strong jitter.
  np.testing.assert_array_equal(views["pixels"], normalize_image(views["view"], jnp.float32))
  shown = np.asarray(views["input"])
  np.testing.assert_array_equal(shown[~mask], np.asarray(views["view"])[~mask])
  np.testing.assert_allclose(shown[mask], np.broadcast_to(IMAGE_MEAN, shown[mask].shape))


@pytest.mark.parametrize("masked_aus", ["ignore", "keep"])
def test_aus_the_masks_hide_carry_no_pseudo_label(masked_aus):
  config = tiny_config()
  config.wsrtl.semi.masked_aus = masked_aus
  config.wsrtl.semi.positive_threshold = -1.0  # Every teacher call is a positive label.
  model, _, state = methods.create(config, NUM_AUS)
  mesh = parallel.make_mesh(1)
  pairs = parallel.to_global_batch(bench.synthetic_batch(config, NUM_AUS), mesh)["pairs"]
  targets = lambda teacher, p: wsrtl_method.unlabelled_targets(model, teacher, p, jnp.int32(3),
                                                                config)
  targets_of = jax.jit(jax.shard_map(  # BatchNorm in training mode reduces over the mesh axis.
      targets, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(AXIS)))
  views, targets = jax.device_get(targets_of(parallel.replicate(state.teacher, mesh), pairs))
  hidden = np.asarray(views["hidden"])
  assert (hidden.sum(1) >= config.wsrtl.inpainting.num_masked).all()
  assert (hidden.sum(1) < NUM_AUS).all()
  mask = np.asarray(views["mask"])
  centres = np.asarray(jax.device_get(pairs["au_centres"]))[:, 0][:, list(model.token_aus)]
  centres = np.round(centres).astype(int)
  for n, a in zip(*np.nonzero(hidden)):  # Both centres of a hidden AU lie in the mask.
    assert all(mask[n, y, x] for x, y in centres[n, a])
  expected = np.where(hidden, -1, 1) if masked_aus == "ignore" else np.ones_like(hidden)
  np.testing.assert_array_equal(targets["pseudo"], expected)


def tiny_config(**weights):
  config = synthau_wsrtl.get_config()
  config.model.width, config.model.token_dim, config.model.relation_heads = 8, 16, 2
  config.data.image_size, config.global_batch_size, config.wsrtl.pairs_batch_size = 32, 8, 8
  config.num_train_steps, config.optim.warmup_steps = 10, 2
  config.wsrtl.flow.levels, config.wsrtl.semi.rampup_steps = 2, 1
  for name, value in weights.items():
    config.wsrtl[name].weight = value
  return config


def run_steps(config, num_devices, num_steps=2):
  model, optimizer, state = methods.create(config, NUM_AUS)
  step = wsrtl_method.make_train_step(model, optimizer,
                                      train_state.learning_rate_schedule(config),
                                      jnp.linspace(0.5, 1.5, NUM_AUS), config)
  mesh = parallel.make_mesh(num_devices)
  sharded = parallel.shard_step(step, mesh)
  state = parallel.replicate(state, mesh)
  history = []
  for i in range(num_steps):
    batch = parallel.to_global_batch(bench.synthetic_batch(config, NUM_AUS, seed=i), mesh)
    previous = jax.device_get(state)
    state, metrics = sharded(state, batch)
    history.append((previous, jax.device_get(metrics)))
  return history, jax.device_get(state)


def flat(tree):
  """Every parameter but the attention key biases, in one vector: softmax ignores a key bias, so
  its gradient is rounding noise that Adam scales to full steps, differently on 1 and 4 devices."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for path, x in leaves
                         if "['key']['bias']" not in jax.tree_util.keystr(path)])


@pytest.fixture(scope="module")
def full_runs():
  config = tiny_config()
  return config, run_steps(config, 1), run_steps(config, 4)


def test_every_loss_is_on_and_one_and_four_devices_agree(full_runs):
  config, (history_1, state_1), (history_4, state_4) = full_runs
  for _, metrics in history_1:
    assert {"loss_au", "loss_inpainting", "loss_flow", "loss_semi"} <= metrics.keys()
    assert all(np.isfinite(v) for v in metrics.values())
  for (_, m1), (_, m4) in zip(history_1, history_4):
    for key in ("loss", "loss_au", "loss_inpainting", "loss_flow", "loss_semi"):
      assert m1[key] == pytest.approx(m4[key], rel=2e-3, abs=1e-5), key
  moved = flat(state_1.params) - flat(history_1[0][0].params)
  gap = flat(state_4.params) - flat(state_1.params)
  assert np.abs(gap).max() < 0.02 * np.abs(moved).max()


def test_teacher_is_the_ema_of_the_student(full_runs):
  config, (history, state), _ = full_runs
  decay = config.wsrtl.semi.ema_decay
  before = history[-1][0]
  expected = jax.tree.map(lambda t, s: decay * t + (1 - decay) * s, before.teacher["params"],
                          state.params)
  np.testing.assert_allclose(flat(state.teacher["params"]), flat(expected), rtol=1e-5, atol=1e-6)


def test_all_off_trains_on_labelled_frames_alone():
  config = tiny_config(inpainting=0.0, flow=0.0, semi=0.0)
  assert not wsrtl_method.uses_pairs(config)
  history, _ = run_steps(config, 1, num_steps=1)
  metrics = history[0][1]
  assert {k for k in metrics if k.startswith("loss")} == {"loss", "loss_au"}
  assert metrics["loss"] == pytest.approx(metrics["loss_au"])


def test_inference_needs_only_intact_faces_and_centres():
  config = tiny_config()
  model, _, state = methods.create(config, NUM_AUS)
  predict = evaluate.make_predict_fn(model, config.data.image_size)
  batch = bench.synthetic_batch(config, NUM_AUS)["labelled"]
  probs = np.asarray(predict(state, batch["image"], batch["au_centres"]))
  assert probs.shape == (8, NUM_AUS) and ((probs > 0) & (probs < 1)).all()



@pytest.mark.parametrize("name", ["synthau_supervised", "synthau_wsrtl", "bp4d_wsrtl",
                                  "disfa_wsrtl"])
def test_configs_name_a_method_and_a_model_that_exist(name):
  config = load_config(f"{ROOT}/configs/{name}.py")
  methods.check_method(config)
  aus = aus_of(config.data.name)
  model = models.build_model(config, len(aus))
  if methods.method_of(config) == "wsrtl":
    assert [CENTRE_AUS[i] for i in model.token_aus] == list(aus)


def test_skill_is_zero_for_the_trivial_predictor_and_one_for_a_perfect_one():
  """flow_skill against zero flow, inpainting_skill against each image's mean visible colour."""
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)
  face = jnp.asarray(rng.random((2, 6, 6)) > 0.3, jnp.float32)

  def ratio(pair):
    return float(pair[0] / pair[1])

  assert ratio(wsrtl_method.flow_sums(jnp.zeros_like(target), target, face)) == pytest.approx(1.0)
  assert ratio(wsrtl_method.flow_sums(target, target, face)) < 1e-2
  pixels = jnp.asarray(rng.normal(size=(2, 8, 8, 3)), jnp.float32)
  mask = jnp.zeros((2, 8, 8, 1)).at[:, 2:5, 3:6].set(1.0)
  visible_mean = (pixels * (1 - mask)).sum((1, 2), keepdims=True) / (1 - mask).sum((1, 2),
                                                                                  keepdims=True)
  fill = jnp.broadcast_to(visible_mean, pixels.shape)
  assert ratio(wsrtl_method.inpainting_sums(fill, pixels, mask)) == pytest.approx(1.0)
  assert ratio(wsrtl_method.inpainting_sums(pixels, pixels, mask)) == 0.0


WSRTL_TINY = {"wsrtl.pairs_batch_size": 8, "model.token_dim": 16, "model.relation_heads": 2,
              "wsrtl.flow.levels": 2, "wsrtl.semi.rampup_steps": 4, "num_train_steps": 8}


def test_train_cli_logs_every_loss_draws_samples_and_reports(tmp_path):
  workdir = tmp_path / "wsrtl_tiny"
  result = run_cli(cli_args("train", workdir, config="configs/synthau_wsrtl.py", **WSRTL_TINY))
  assert result.returncode == 0, result.stderr[-3000:]
  rows = read_jsonl(workdir / "metrics.jsonl")
  assert all({"loss_au", "loss_inpainting", "loss_flow", "loss_semi", "pseudo_label_coverage",
              "flow_skill", "inpainting_skill"} <= r.keys() for r in rows)
  assert all(r["flow_skill"] <= 1 and r["inpainting_skill"] <= 1 for r in rows)
  result = json.loads((workdir / "eval.json").read_text())
  assert result["skill_pairs"] == 4 * 8  # Four batches of the test subjects' pairs.
  assert result["networks"].keys() == {"student", "teacher"}  # eval.model=best scores both,
  chosen = result["networks"][result["network"]]  # and reports the one better on validation.
  assert chosen["val_avg_f1"] == max(n["val_avg_f1"] for n in result["networks"].values())
  assert chosen["avg_f1"] == result["avg_f1"]
  assert np.isfinite(result["flow_skill"]) and result["flow_skill"] <= 1
  assert np.isfinite(result["inpainting_skill"]) and result["inpainting_skill"] <= 1
  with Image.open(workdir / "wsrtl_samples.png") as image:
    assert image.format == "PNG" and image.size[0] > 800 and image.size[1] > 1000
  report = run_cli([sys.executable, "-m", "wsrtl_jax", "report", str(workdir)])
  assert report.returncode == 0, report.stderr[-2000:]
  assert "wsrtl_tiny" in report.stdout and "all-positive (chance)" in report.stdout
  missing = run_cli([sys.executable, "-m", "wsrtl_jax", "report", str(tmp_path / "nothing")])
  assert missing.returncode == 2 and "eval.json' does not exist" in missing.stderr
