"""Methods and models are looked up by name: a method and a model written here, outside the
library, train through `train` like the built-in ones."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest

from data_pipeline.errors import UserError
from tests.helpers import tiny_config
from wsrtl_jax import image_ops, methods, models, train, train_state
from wsrtl_jax.batch_ops import global_value_and_grad
from wsrtl_jax.logging_utils import read_jsonl
from wsrtl_jax.methods import supervised
from wsrtl_jax.parallel import AXIS

SMOOTHING = 0.1


class MaxPooledDetector(nn.Module):
  """The backbone's last stage max-pooled (not averaged) into a linear AU head."""
  backbone: nn.Module
  num_aus: int

  @nn.compact
  def __call__(self, images, au_centres=None, train=False):
    pooled = jnp.max(self.backbone(images, train=train)[-1].astype(jnp.float32), axis=(1, 2))
    return nn.Dense(self.num_aus)(pooled)


def smoothed_step(config, model, optimizer, schedule, au_weights):
  """BCE against labels smoothed towards 1/2 by SMOOTHING, unweighted."""

  def step(state, batch):
    images = image_ops.finish_images(batch["image"], batch["flip"], batch["jitter"],
                                     config.data.image_size)
    known = (batch["label"] >= 0).astype(jnp.float32)
    target = jnp.where(batch["label"] == 1, 1.0 - SMOOTHING / 2, SMOOTHING / 2)

    def loss_fn(params):
      logits, new_vars = model.apply({"params": params, "batch_stats": state.batch_stats},
                                     images, train=True, mutable=["batch_stats"])
      loss_sum = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, target) * known)
      return loss_sum / jax.lax.psum(known.sum(), AXIS), new_vars["batch_stats"]

    (loss, batch_stats), grads = global_value_and_grad(loss_fn, state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, {"loss": jax.lax.psum(loss, AXIS), "learning_rate": schedule(state.step),
                       "label_smoothing": jnp.float32(SMOOTHING)}

  return step


SMOOTHED = methods.Method(
    name="smoothed", create=lambda config, num_aus: train_state.create(config, num_aus),
    make_step=smoothed_step, train_inputs=supervised.labelled_inputs,
    synthetic_batch=supervised.synthetic_labelled,
    images_per_step=lambda config: config.global_batch_size)


def test_a_fourth_method_and_model_train_through_train(tmp_path):
  methods.register("smoothed", SMOOTHED)
  models.register("max_pooled", lambda config, num_aus, backbone, dtype:
                  MaxPooledDetector(backbone=backbone, num_aus=num_aus))
  config = tiny_config(method="smoothed", num_train_steps=4, checkpoint_every=4)
  config.model.name = "max_pooled"
  result = train.train_and_evaluate(config, str(tmp_path))
  rows = read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in rows] == [2, 4]
  assert all(r["label_smoothing"] == pytest.approx(SMOOTHING) for r in rows)
  assert result["step"] == 4 and 0.0 <= result["avg_f1"] <= 1.0
  assert (tmp_path / "eval.json").is_file()


def test_unknown_method_and_model_name_the_known_ones():
  with pytest.raises(UserError, match="unknown method 'nope'; choose one of .*clp.*supervised"):
    methods.get_method(tiny_config(method="nope"))
  config = tiny_config()
  config.model.name = "nope"
  with pytest.raises(UserError, match="unknown model.name 'nope'; choose one of au_detector"):
    models.check_model_config(config)
