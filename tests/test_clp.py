"""CLP: the pieces of the step (InfoNCE against the queue, the temporal margin, the key's view),
the whole sharded step and its queue on 1 and 4 devices, and pretraining then linear evaluation,
the factor probe and fine-tuning from the command line."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from configs import synthau_clp
from data_pipeline.synthau.generator import CLIP_FACTORS
from data_pipeline.config_loading import load_config
from data_pipeline.errors import UserError
from tests.helpers import cli_args
from wsrtl_jax import (checkpointing, cli, factor_probe, methods, parallel, pretrained, probes,
                       train_state)
from wsrtl_jax.methods import clp as clp_method


def test_info_nce_is_cross_entropy_with_the_positive_first():
  q = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  k = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  queue = jnp.array([[0.0, 1.0], [-1.0, 0.0]])
  loss, top1 = clp_method.info_nce(q, k, queue, 0.5)
  logits = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]) / 0.5
  expected = -logits[:, 0] + np.log(np.exp(logits).sum(1))
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert top1.tolist() == [True, False]


def test_info_nce_with_clip_negatives_adds_the_other_frames_of_the_clip():
  q = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # One clip of two frames.
  k = jnp.array([[0.6, 0.8], [0.0, 1.0]])
  queue = jnp.array([[-1.0, 0.0]])
  loss, top1 = clp_method.info_nce(q, k, queue, 0.5, group=2)
  # Row i: [q_i.k_0, q_i.k_1, q_i.queue]; the positive is k_i.
  logits = np.array([[0.6, 0.0, -1.0], [0.8, 1.0, 0.0]]) / 0.5
  expected = -logits[[0, 1], [0, 1]] + np.log(np.exp(logits).sum(1))
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  assert top1.tolist() == [True, True]
  # The same frames as one-frame groups see only the queue.
  alone, _ = clp_method.info_nce(q, k, queue, 0.5)
  assert float(alone[0]) < float(loss[0])


def test_temporal_margin_asks_a_margin_per_frame_of_distance():
  margin = 0.1
  in_order = jnp.array([[0.9, 0.7, 0.5]])  # Falls by 0.2 per frame: no violation.
  too_flat = jnp.array([[0.9, 0.85, 0.8]])  # Falls by 0.05 per frame.
  reversed_ = jnp.array([[0.5, 0.7, 0.9]])
  violation, ordered = clp_method.temporal_margin(
      jnp.concatenate([in_order, too_flat, reversed_]), margin)
  # Pairs (0,1), (0,2), (1,2) ask for drops of 0.1, 0.2, 0.1.
  np.testing.assert_allclose(violation, [0.0, 0.05 + 0.1 + 0.05, 0.3 + 0.6 + 0.3], atol=1e-6)
  np.testing.assert_allclose(ordered, [1.0, 1.0, 0.0])


def test_second_view_crops_and_resizes_back_and_is_the_image_at_full_scale():
  y, x = np.mgrid[0:16, 0:16].astype(np.float32)
  ramp = jnp.asarray(np.stack([x * 8 + y * 2] * 3, axis=-1)[None].repeat(2, axis=0))
  draw = jnp.array([[0.3, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5]] * 2)  # No flip; mid jitter = none.
  view = clp_method.second_view(ramp, draw, min_scale=1.0, jitter=0.4)
  np.testing.assert_allclose(view, ramp, atol=1e-3)
  # Half the side (scale draw 0 with min_scale 0.5), from (4, 4): output pixel i samples the
  # input at 4 + (i + 0.5) / 2 - 0.5; a ramp is resampled exactly away from the border.
  half = clp_method.second_view(ramp, draw.at[:, 0].set(0.0), min_scale=0.5, jitter=0.4)
  source = 4 + (np.arange(16) + 0.5) / 2 - 0.5
  expected = source[None, :] * 8 + source[:, None] * 2
  np.testing.assert_allclose(half[0, 2:-2, 2:-2, 0], expected[2:-2, 2:-2], atol=1e-3)


def tiny_config(**weights):
  config = synthau_clp.get_config()
  config.model.width, config.model.code_dim, config.data.image_size = 8, 16, 32
  config.global_batch_size, config.clp.queue_size = 4, 48
  config.num_train_steps, config.optim.warmup_steps = 10, 1
  for name, value in weights.items():
    node, key = name.split(".")
    config.clp[node][key] = value
  return config


def units(config, seed):
  rng = np.random.default_rng(seed)
  b, t = config.global_batch_size, config.data.clip_length
  return {"image": rng.integers(0, 256, (b, 2, t, 36, 36, 3), dtype=np.uint8),
          "flip": rng.random((b, 2)) < 0.5,
          "jitter": np.stack([rng.uniform(-20, 20, (b, 2)), rng.uniform(0.8, 1.2, (b, 2)),
                              rng.uniform(0.8, 1.2, (b, 2))], axis=-1).astype(np.float32)}


def run_steps(config, num_devices, num_steps=2):
  model, optimizer, state = methods.create(config, 12)
  initial = jax.device_get(state)
  mesh = parallel.make_mesh(num_devices)
  step = parallel.shard_step(
      methods.make_step(config, model, optimizer, train_state.learning_rate_schedule(config), None),
      mesh)
  state = parallel.replicate(initial, mesh)
  history = []
  for i in range(num_steps):
    state, metrics = step(state, parallel.to_global_batch(units(config, i), mesh))
    history.append(jax.device_get(metrics))
  return initial, history, jax.device_get(state)


def flat(tree):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def test_step_and_queue_on_one_and_four_devices_agree():
  config = tiny_config()
  config.clp.clip_negatives = True  # The per-clip grouping must stay within each device's frames.
  initial, history_1, state_1 = run_steps(config, 1)
  _, history_4, state_4 = run_steps(config, 4)
  for m1, m4 in zip(history_1, history_4):
    assert {"loss_nce", "loss_tcl", "loss_reconstruction", "loss_cycle", "nce_top1",
            "tcl_ordered", "cir_explained"} <= m1.keys()
    for key in m1:
      assert m1[key] == pytest.approx(m4[key], rel=2e-3, abs=1e-5), key
  np.testing.assert_allclose(state_1.queue, state_4.queue, atol=2e-3)
  np.testing.assert_allclose(np.linalg.norm(state_1.queue, axis=1), 1.0, rtol=1e-5)
  moved = flat(state_1.params) - flat(initial.params)
  # Relative to how far training moved them (Adam turns rounding noise in near-zero gradients
  # into learning-rate-sized steps, see test_parallel_step).
  assert np.linalg.norm(flat(state_4.params) - flat(state_1.params)) < 0.02 * np.linalg.norm(moved)
  trail = flat(state_1.teacher["params"]) - flat(initial.params)
  assert 0 < np.abs(trail).max() < np.abs(moved).max()  # The momentum encoder trails.


def test_cir_takes_the_appearance_from_the_identity_face_and_learns_to_move_it():
  config = tiny_config()
  model, _, state = methods.create(config, 12)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  rng = np.random.default_rng(0)
  faces = jnp.asarray(rng.integers(0, 256, (2, 2, 32, 32, 3)), jnp.float32)
  samples = clp_method.make_swap_fn(model)(variables, faces)
  half = np.asarray(faces).reshape(2, 2, 16, 2, 16, 2, 3).mean(axis=(3, 5))
  # The move starts as the identity warp: "AU of A, identity of B" is B's face, pixel for pixel.
  np.testing.assert_allclose(samples["swapped"], half[:, ::-1], atol=1e-3)
  np.testing.assert_allclose(samples["own"], half, atol=1e-3)
  _, history, trained = run_steps(config, 1, num_steps=3)
  assert history[-1]["cir_explained"] != 0.0  # Training moved the pixels.
  variables = {"params": trained.params, "batch_stats": trained.batch_stats}
  moved = clp_method.make_swap_fn(model)(variables, faces)["swapped"]
  assert np.abs(np.asarray(moved) - half[:, ::-1]).max() > 1e-2


def test_plain_moco_has_only_the_contrastive_loss():
  config = tiny_config(**{"tcl.weight": 0.0, "cir.weight": 0.0, "cir.cycle_weight": 0.0})
  initial, history, state = run_steps(config, 1, num_steps=1)
  assert history[0]["loss"] == pytest.approx(history[0]["loss_nce"])
  assert not {"loss_tcl", "loss_reconstruction", "loss_cycle"} & history[0].keys()
  # The step's keys go in first and push the oldest out.
  frames = config.global_batch_size * 2 * config.data.clip_length
  np.testing.assert_array_equal(state.queue[frames:], initial.queue[:-frames])


def test_split_by_sequence_trains_on_each_persons_first_sequence():
  identities = np.array([0, 0, 0, 0, 1, 1, 2])
  sequences = np.array([5, 5, 9, 9, 3, 4, 7])
  assert probes.split_by_sequence(identities, sequences).tolist() == [1, 1, 0, 0, 1, 0, -1]


CLP_TINY = {"global_batch_size": 4, "model.code_dim": 16, "clp.queue_size": 32,
            "data.clip_stride": 1,  # synthau/tiny's sequences have 8 frames.
            "num_train_steps": 2, "checkpoint_every": 2}
LINEAR_TINY = {"linear.steps": 40, "linear.identity_steps": 40, "linear.score_every": 20,
               "data.label_fraction": 0.5}


def test_change_over_clip_is_one_minus_cos_to_the_first_frame():
  first, same, turned = [1.0, 0.0], [3.0, 0.0], [0.0, 2.0]
  assert factor_probe.change_over_clip(np.array([[first, same, same]])) == 0.0
  assert factor_probe.change_over_clip(np.array([[first, same, turned]])) == 0.5


def test_pretrain_then_linear_eval_then_fine_tune(tmp_path, capsys):
  """In one process (the CLI's `run`), to spare the suite three interpreter start-ups."""
  pretrain = tmp_path / "clp"
  cli.run(cli_args("train", pretrain, config="configs/synthau_clp.py", **CLP_TINY)[3:])
  assert "linear_eval --workdir" in capsys.readouterr().out
  with Image.open(pretrain / "cir_samples.png") as image:
    assert image.format == "PNG" and image.size[0] > 800
  assert not (pretrain / "eval.json").exists()  # No labels were used, so no AU metrics.

  cli.run(cli_args("linear_eval", pretrain, config="configs/synthau_clp_linear.py",
                   **LINEAR_TINY)[3:])
  assert "identity probe accuracy" in capsys.readouterr().out
  result = json.loads((pretrain / "linear_eval" / "eval.json").read_text())
  assert result["protocol"] == "linear" and result["pretrain_step"] == 2
  assert set(result["per_au_f1"]) and 0 <= result["avg_f1"] <= 1
  assert result["identity_probe"]["people"] == 3  # synthau/tiny's test part.
  cli.run(cli_args("linear_eval", pretrain, config="configs/synthau_clp_linear.py",
                   **LINEAR_TINY, **{"linear.feature": "backbone_map"})[3:] + ["--out",
                                                                            str(tmp_path / "map")])
  # The last stage unpooled: 2 x 2 cells of 64 channels at 48 px and width 8.
  assert "Features (backbone_map, 256 dims)" in capsys.readouterr().out
  assert json.loads((tmp_path / "map" / "eval.json").read_text())["feature"] == "backbone_map"
  cli.run(cli_args("linear_eval", pretrain, config="configs/synthau_clp_linear.py",
                   **LINEAR_TINY, **{"linear.feature": "au_centres"})[3:] + ["--out",
                                                                          str(tmp_path / "geo")])
  # Two centres (x, y) for each of the 15 AUs, as fractions of the side.
  assert "Features (au_centres, 60 dims)" in capsys.readouterr().out
  cli.run(["factors", "--workdir", str(pretrain)])
  factors = json.loads((pretrain / "factors" / "factors.json").read_text())["factors"]
  assert tuple(factors) == CLIP_FACTORS and "head pose" in capsys.readouterr().out
  assert factors["all"]["pixel_change"] > factors["AUs"]["pixel_change"] > 0
  with Image.open(pretrain / "factors" / "factors.png") as image:
    assert image.format == "PNG"

  supervised = load_config("configs/synthau_supervised.py")
  supervised.model.width, supervised.data.image_size = 8, 48  # As the tiny pretraining.
  _, _, state = methods.create(supervised, 15)
  state = jax.device_get(state)
  start = pretrained.with_backbone_of(state, str(pretrain), supervised)
  _, _, clp_state, _ = pretrained.load_run(str(pretrain))
  assert np.array_equal(flat(start.params["backbone"]), flat(clp_state.params["backbone"]))
  assert np.array_equal(flat(start.params["au_head"]), flat(state.params["au_head"]))
  supervised.model.width = 16
  with pytest.raises(UserError, match="its backbone .* differs from this config's"):
    pretrained.with_backbone_of(jax.device_get(methods.create(supervised, 15)[2]), str(pretrain),
                               supervised)
  finetune = tmp_path / "finetune"
  cli.run(cli_args("train", finetune, **{"model.init_from": str(pretrain), "num_train_steps": 2,
                                         "checkpoint_every": 2})[3:])
  assert "Backbone initialised from" in capsys.readouterr().out
  assert json.loads((finetune / "eval.json").read_text())["step"] == 2

  with pytest.raises(UserError, match="needs a config with a `linear` section"):
    cli.run(cli_args("linear_eval", pretrain, config="configs/synthau_supervised.py")[3:])
  with pytest.raises(UserError, match="config.json' does not exist"):
    cli.run(cli_args("linear_eval", tmp_path / "nothing",
                     config="configs/synthau_clp_linear.py")[3:])


def test_checkpoints_of_states_without_the_optional_parts_restore(tmp_path):
  """Releases before CLP saved the whole state, its unused teacher and queue as None."""
  state = train_state.TrainState(step=jnp.array(3, jnp.int32), params={"w": jnp.arange(3.0)},
                              batch_stats={"m": jnp.ones(2)}, opt_state={"mu": jnp.zeros(3)})
  manager = checkpointing.checkpoint_manager(str(tmp_path / "old"), 2, scored=False)
  manager.save(3, args=ocp.args.StandardSave(state))  # The earlier format.
  manager.wait_until_finished()
  restored = checkpointing.restore(manager, 3, state)
  assert restored.queue is None and int(restored.step) == 3
  np.testing.assert_array_equal(restored.params["w"], state.params["w"])
  with_queue = state.replace(queue=jnp.ones((4, 2)))
  manager = checkpointing.checkpoint_manager(str(tmp_path / "new"), 2, scored=False)
  checkpointing.save(manager, 3, with_queue)
  manager.wait_until_finished()
  np.testing.assert_array_equal(checkpointing.restore(manager, 3, with_queue).queue, 1.0)
  # A network that has changed since the checkpoint was written (CLP's decoder did).
  changed = with_queue.replace(params={"w": jnp.arange(3.0), "decoder": jnp.zeros(2)})
  with pytest.raises(UserError, match="checkpoints/3 holds a different network"):
    checkpointing.restore(manager, 3, changed)
