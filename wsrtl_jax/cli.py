"""Command line: `python -m wsrtl_jax {prepare,train,protocol,evaluate,linear_eval,factors,bench,
compare,report,import_weights,predict}`.

Heavy imports (TensorFlow, the data path) happen inside the commands that need them, so `bench`
runs where TensorFlow is not installed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow is only our input pipeline.

import ml_collections

from data_pipeline.config_loading import (load_config, override_config, saved_config,
                                          split_overrides)
from data_pipeline.errors import UserError

USAGE = """python -m wsrtl_jax COMMAND [options]

  prepare   --dataset NAME[/CONFIG] [--manual_dir DIR] [--data_dir DIR]
            build the tfds store(s) of bp4d, disfa, gft, face_videos (or synthau) and summarise
  train     --config FILE [--config.KEY=VALUE ...] --workdir DIR   train (resumes if DIR has checkpoints)
            [--distributed [--coordinator HOST:PORT --num_processes N --process_id I]]
  protocol  --config FILE [--config.KEY=VALUE ...] --workdir DIR [--folds 1,2,3] [--seeds 0]
            train every fold x seed into DIR/fold{k}_seed{s} (finished ones skipped), then the
            per-AU F1 table: each fold, the mean over folds +- std over seeds, the paper's row
  evaluate  --workdir DIR [--split test|validation] [--step N]     re-evaluate a trained run
  linear_eval --workdir PRETRAIN_DIR --config FILE [--config.KEY=VALUE ...] [--out DIR]
            [--random_init]    probe a pretraining run's frozen features (or the same network
                               untrained): AU F1 from a linear head, identity accuracy
  factors   --workdir DIR [--random_init] [--out DIR]   what moves a SynthAU run's frozen output
            over a clip: each AU and nuisance factor varied alone, output change beside pixels'
  bench     --config FILE [--config.KEY=VALUE ...] [--steps N]     time the compiled train step
            [--input]                                               or the input streams (frames/s)
            [--peer]                                                and the PyTorch peer's step, same shapes
            [--sweep [B,B,...]] [--profile DIR]      per-device batch sizes (8,16,32,64) x dtypes; a trace
  compare   DIR_A DIR_B                                             losses and parameters of two runs
  import_weights --torchvision FILE --backbone resnet18|resnet34|resnet50 --out DIR
            [--check IMAGE]   a torchvision ResNet state dict (.pth or .safetensors) as a DIR
                              that --config.model.init_from=DIR starts from (ImageNet weights);
                              --check: its pooled features against torchvision's on IMAGE
  predict   --workdir DIR INPUT [INPUT ...] --out OUT    a trained run's AU predictions for image
            files, folders of images and videos: OUT/<input>.csv, one row per frame (face box,
            AU01_prob, AU01_pred, ...), and OUT/<input>_timeline.png per video
  report    DIR [DIR ...] [--markdown]                              test results of runs side by side
            (DIR,DIR,...: repeats of one run, e.g. seeds, averaged into one row with their spread)
"""


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # One line, not usage plus traceback.
    raise UserError(f"{message} (see python -m wsrtl_jax --help)")


def _parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str]]:
  """Splits the config overrides from the other flags and parses those."""
  overrides, rest = split_overrides(argv)
  parser = _Parser(prog="python -m wsrtl_jax", usage=USAGE, add_help=True)
  parser.add_argument("command", choices=["prepare", "train", "protocol", "evaluate",
                                          "linear_eval", "factors", "bench", "compare", "report",
                                          "import_weights", "predict"])
  parser.add_argument("dirs", nargs="*",
                      help="the workdirs of `compare` and `report`; the INPUTs of `predict`")
  parser.add_argument("--markdown", action="store_true")
  parser.add_argument("--config")
  parser.add_argument("--workdir")
  parser.add_argument("--out")
  parser.add_argument("--random_init", action="store_true")
  parser.add_argument("--split", default="test", choices=["test", "validation"])
  parser.add_argument("--step", type=int)
  parser.add_argument("--folds", default="1,2,3")
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--input", action="store_true")
  parser.add_argument("--peer", action="store_true")
  parser.add_argument("--sweep", nargs="?", const="")  # "": bench.SWEEP_BATCHES.
  parser.add_argument("--profile")
  parser.add_argument("--torchvision")
  parser.add_argument("--backbone")
  parser.add_argument("--check")
  parser.add_argument("--dataset")
  parser.add_argument("--manual_dir")
  parser.add_argument("--data_dir")
  parser.add_argument("--distributed", action="store_true",
                      default=os.environ.get("WSRTL_DISTRIBUTED") == "1")
  parser.add_argument("--coordinator")
  parser.add_argument("--num_processes", type=int)
  parser.add_argument("--process_id", type=int)
  args, unknown = parser.parse_known_intermixed_args(rest)
  if unknown:
    raise UserError(f"unknown argument(s): {' '.join(unknown)} (see --help)")
  return args, overrides


def _config(args: argparse.Namespace, overrides: dict[str, str]) -> ml_collections.ConfigDict:
  if not args.config:
    raise UserError(f"{args.command} needs --config FILE")
  return override_config(load_config(args.config), overrides)


def _require_workdir(args: argparse.Namespace) -> str:
  if not args.workdir:
    raise UserError(f"{args.command} needs --workdir DIR")
  return args.workdir


def _initialize_distributed(args: argparse.Namespace) -> None:
  """One process per host: `jax.distributed.initialize`, which detects TPU pods, SLURM and
  similar clusters by itself; elsewhere (e.g. CPU processes on one machine) pass the three flags."""
  import jax
  jax.distributed.initialize(coordinator_address=args.coordinator,
                             num_processes=args.num_processes, process_id=args.process_id)


def run(argv: list[str]) -> None:
  args, overrides = _parse(argv)
  if args.distributed:
    _initialize_distributed(args)
  if args.command == "prepare":
    if not args.dataset:
      raise UserError("prepare needs --dataset NAME (bp4d, disfa, gft, face_videos, synthau)")
    from data_pipeline import prepare
    summary = prepare.prepare(args.dataset, args.manual_dir, args.data_dir)
    print(prepare.format_summary(summary), flush=True)
    if summary["failed"]:
      raise UserError(f"{', '.join(summary['failed'])} not built (why above); the other configs "
                      "are ready")
  elif args.command == "train":
    config = _config(args, overrides)
    workdir = _require_workdir(args)
    from wsrtl_jax import models, train
    models.check_model_config(config)
    train.train_and_evaluate(config, workdir)
  elif args.command == "protocol":
    config = _config(args, overrides)
    workdir = _require_workdir(args)
    from wsrtl_jax import models, protocol
    models.check_model_config(config)
    protocol.run_protocol(config, workdir, protocol.parse_ints(args.folds, "--folds"),
                          protocol.parse_ints(args.seeds, "--seeds"))
  elif args.command == "evaluate":
    workdir = _require_workdir(args)
    config = override_config(saved_config(workdir), overrides)
    from wsrtl_jax import evaluate
    evaluate.evaluate_checkpoint(config, workdir, args.split, step=args.step)
  elif args.command == "linear_eval":
    config = _config(args, overrides)
    if "linear" not in config:
      raise UserError(f"linear_eval needs a config with a `linear` section, such as "
                      f"configs/synthau_clp_linear.py; '{args.config}' has none")
    from wsrtl_jax import linear_eval
    linear_eval.linear_eval(config, _require_workdir(args), args.out, args.random_init)
  elif args.command == "factors":
    from wsrtl_jax import factor_probe
    factor_probe.factor_probe(_require_workdir(args), random_init=args.random_init,
                              out_dir=args.out)
  elif args.command == "bench" and args.input:
    from data_pipeline import input_bench
    for record in input_bench.benchmark_input(_config(args, overrides)):
      print(json.dumps(record), flush=True)
  elif args.command == "bench" and args.sweep is not None:
    from wsrtl_jax import bench
    try:
      batches = (tuple(int(b) for b in args.sweep.split(",")) if args.sweep
                 else bench.SWEEP_BATCHES)
    except ValueError:
      raise UserError(f"--sweep takes per-device batch sizes such as 8,16,32; got "
                      f"'{args.sweep}'") from None
    print(bench.markdown_table(bench.sweep(_config(args, overrides), args.steps, batches)),
          flush=True)
  elif args.command == "bench":
    from wsrtl_jax import bench
    result = bench.benchmark(_config(args, overrides), steps=args.steps, profile_dir=args.profile)
    print(json.dumps(result), flush=True)
    if args.peer:
      peer = bench.pytorch_peer(args.config, overrides, args.steps)
      print(json.dumps(peer), flush=True)
      print(json.dumps({"jax_over_pytorch": round(result["images_per_sec"]
                                                  / peer["images_per_sec"], 3)}), flush=True)
  elif args.command == "import_weights":
    if not (args.torchvision and args.backbone and args.out):
      raise UserError("import_weights needs --torchvision FILE --backbone NAME --out DIR")
    from wsrtl_jax import weight_import
    config, model, state = weight_import.import_weights(args.torchvision, args.backbone, args.out)
    print(f"{args.torchvision} -> {args.out} ({args.backbone}, width {config.model.width}, "
          f"padding torch); start from it with --config.model.init_from={args.out} "
          "--config.model.padding=torch", flush=True)
    if args.check:
      print(json.dumps(weight_import.check(args.torchvision, args.backbone, model, state,
                                           args.check)), flush=True)
  elif args.command == "predict":
    if not args.out:
      raise UserError("predict needs --out DIR for its CSVs")
    from wsrtl_jax import predict
    predict.predict(_require_workdir(args), args.dirs, args.out)
  elif args.command == "compare":
    if len(args.dirs) != 2:
      raise UserError("compare needs two workdirs: compare DIR_A DIR_B")
    from wsrtl_jax import compare
    print(json.dumps(compare.compare_runs(*args.dirs)), flush=True)
  elif args.command == "report":
    if not args.dirs:
      raise UserError("report needs one or more workdirs: report DIR[,DIR...] [DIR ...]")
    from wsrtl_jax import report
    results = report.load_results(args.dirs)
    print(report.markdown_report(results) if args.markdown else report.format_report(results),
          flush=True)


def main() -> None:
  if sys.argv[1:2] in (["train"], ["protocol"]):
    from wsrtl_jax import preemption
    preemption.install()  # Before the heavy imports: SIGTERM during start-up stops cleanly too.
  try:
    run(sys.argv[1:])
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except OSError as e:  # A project file or folder that cannot be read or written.
    where = " -> ".join(f"'{f}'" for f in (e.filename, e.filename2) if f)
    print(f"error: {where or 'a file'}: {e.strerror or e}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print("interrupted; rerun the same command to resume from the last checkpoint",
          file=sys.stderr)
    sys.exit(130)
