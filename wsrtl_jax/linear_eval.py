"""`linear_eval(config, workdir)`: the frozen representation of a pretraining run, probed.

AU probe: a BatchNorm + linear head (TCAE's protocol) on the features of the labelled training
frames (`data.label_fraction`), the probe kept where it scored best on the validation subjects,
tested on the fold's test subjects; `eval.json` like `train`'s. Identity probe: how well a linear
softmax on the same features tells the test subjects apart, trained on each person's first
sequence and tested on their others (person independence: lower is better).
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipeline import input_pipeline
from data_pipeline.errors import UserError
from wsrtl_jax import (logging_utils, losses, methods, metrics, parallel, plots, pretrained,
                       probes)
from wsrtl_jax.evaluate import gather_split, make_predict_fn

def _last_stage(module, images, train):
  return module.backbone(images, train=train)[-1].astype(jnp.float32)


def _pooled_backbone(module, images, au_centres, train):
  return jnp.mean(_last_stage(module, images, train), axis=(1, 2))


def _backbone_map(module, images, au_centres, train):
  """The last stage unpooled, flattened: where on the face a feature fires is kept."""
  last = _last_stage(module, images, train)
  return last.reshape(last.shape[0], -1)


def _au_centres(module, images, au_centres, train):
  """The landmarks' AU centres as fractions of the side, no network: how far the face's geometry
  alone tells the AUs (a reference for what pretraining can reach)."""
  return au_centres.reshape(au_centres.shape[0], -1).astype(jnp.float32) / images.shape[1]


# `linear.feature` -> what the probe reads (None: the model's output, the AU code).
FEATURES = {"au_code": None, "backbone": _pooled_backbone, "backbone_map": _backbone_map,
            "au_centres": _au_centres}


def identity_probe(features: np.ndarray, identities: np.ndarray, sequences: np.ndarray,
                   config: ml_collections.ConfigDict) -> dict:
  """Accuracy of a linear softmax probe telling people apart by their features, on sequences it
  was not trained on; with chance (one over the number of people)."""
  split = probes.split_by_sequence(identities, sequences)
  people, labels = np.unique(identities[split >= 0], return_inverse=True)
  if len(people) < 2:
    raise UserError("the identity probe needs at least 2 test subjects with 2 sequences each")
  x, train = features[split >= 0], split[split >= 0] == 1
  loss = lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  probe, _ = probes.fit_probe(x[train], labels[train], loss, len(people),
                              steps=config.linear.identity_steps,
                              learning_rate=config.linear.learning_rate,
                              batch_size=config.linear.batch_size, seed=config.seed)
  accuracy = float(np.mean(np.argmax(probe(x[~train]), axis=1) == labels[~train]))
  return {"accuracy": accuracy, "chance": 1.0 / len(people), "people": int(len(people)),
          "train_frames": int(train.sum()), "test_frames": int((~train).sum())}


def linear_eval(config: ml_collections.ConfigDict, workdir: str, out_dir: str | None = None,
                random_init: bool = False) -> dict:
  """Probes the pretraining run in `workdir` (or, with `random_init`, the same network freshly
  initialised) on `config.data`; writes `eval.json` and its per-AU PNG to `out_dir` (default
  `workdir/linear_eval` or `workdir/linear_eval_random_init`)."""
  if config.linear.feature not in FEATURES:
    raise UserError(f"linear.feature='{config.linear.feature}'; choose one of "
                    f"{', '.join(FEATURES)}")
  out_dir = out_dir or os.path.join(workdir, "linear_eval_random_init" if random_init
                                    else "linear_eval")
  pretrain_config, model, state, step = pretrained.load_run(workdir, restore=not random_init)
  method_name = methods.method_of(pretrain_config)
  mesh = parallel.make_mesh(config.num_devices)
  builder = input_pipeline.load_builder(config)
  splits = input_pipeline.fold_splits(config, builder)
  state = parallel.replicate(state, mesh)
  extract = make_predict_fn(model, config.data.image_size, output=lambda x: x,
                            method=FEATURES[config.linear.feature])
  gather = lambda which, **kw: gather_split(extract, state, config, builder, splits, which, mesh,
                                            **kw)
  train, val, test = (gather("train", labelled_only=True), gather("validation"), gather("test"))
  print(f"Features ({config.linear.feature}, {train['output'].shape[1]} dims) of "
        f"{len(train['output'])} labelled training, {len(val['output'])} validation and "
        f"{len(test['output'])} test frames.", flush=True)

  labels = train["label"]
  weights = jnp.asarray(losses.inverse_positive_rate_weights((labels == 1).sum(0),
                                                             (labels >= 0).sum(0)))

  def loss(logits, y):
    loss_sum, count = losses.weighted_bce_sum(logits, y, weights)
    return loss_sum / jnp.maximum(count, 1.0)

  probability = lambda probe, x: 1.0 / (1.0 + np.exp(-probe(x)))
  f1 = lambda probe: metrics.au_metrics(probability(probe, val["output"]), val["label"],
                                        splits.aus, config.eval.threshold)["avg_f1"]
  l = config.linear
  probe, history = probes.fit_probe(train["output"], train["label"], loss, len(splits.aus),
                                    steps=l.steps, learning_rate=l.learning_rate,
                                    batch_size=l.batch_size, seed=config.seed, score=f1,
                                    score_every=l.score_every)
  result = metrics.au_metrics(probability(probe, test["output"]), test["label"], splits.aus,
                              config.eval.threshold)
  result["chance_all_positive"] = metrics.all_positive_f1(test["label"],
                                                          splits.aus)["per_au_f1"]
  best_step, best_f1 = max(history, key=lambda h: h[1])
  result.update(
      split="test", dataset=config.data.name, fold=config.data.fold, step=best_step,
      protocol="linear", feature=config.linear.feature, pretrained=os.path.abspath(workdir),
      pretrain_step=step, random_init=random_init, pretrain_method=method_name,
      val_avg_f1=best_f1, labelled_frames=len(train["output"]),
      identity_probe=identity_probe(test["output"], test["identity"], test["sequence_id"],
                                    config))
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "eval.json")
    logging_utils.write_atomic(path, json.dumps(result, indent=2))
    plots.plot_per_au_f1(result, os.path.join(out_dir, "eval_per_au_f1.png"))
    source = "random init" if random_init else f"{workdir} step {step}"
    print(f"\n{config.data.name} fold {config.data.fold}, test split ({result['num_frames']} "
          f"frames), linear probe on the frozen {config.linear.feature} ({source}), probe step "
          f"{best_step} (best on validation):")
    print(metrics.format_f1_table(
        {f"linear ({method_name})": result["per_au_f1"],
         "all-positive (chance)": result["chance_all_positive"]}, splits.aus))
    ident = result["identity_probe"]
    print(f"avg F1 {100 * result['avg_f1']:.1f}  AUC {100 * result['auc']:.1f}  identity probe "
          f"accuracy {100 * ident['accuracy']:.1f} ({ident['people']} people, chance "
          f"{100 * ident['chance']:.1f})  -> {path}")
  return result
