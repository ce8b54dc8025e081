"""Loads `get_config()` files and applies `--config.a.b=value` overrides with clear errors: the
one parser of config overrides that every command and script uses."""
from __future__ import annotations

import ast
import json
import importlib.util
import os
import sys
from typing import Any

import ml_collections

from data_pipeline.errors import UserError


class ConfigError(UserError):
  """A config file or override that cannot be used; the message names it."""


def load_config(path: str) -> ml_collections.ConfigDict:
  """Imports `path` and returns its `get_config()`."""
  if not os.path.isfile(path):
    raise ConfigError(f"config file '{path}' does not exist")
  spec = importlib.util.spec_from_file_location("_wsrtl_config", path)
  module = importlib.util.module_from_spec(spec)
  # A config may build on another (`from configs import synthau_supervised`) wherever it is run.
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  sys.path.insert(0, root)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # A user's file: report it in one line.
    raise ConfigError(f"config file '{path}' failed to load: {type(e).__name__}: {e}") from e
  finally:
    sys.path.remove(root)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file '{path}' has no get_config() function")
  return module.get_config()


def _parse_value(text: str) -> Any:
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # A bare string such as resnet50.


def lookup(config: ml_collections.ConfigDict, key: str) -> Any:
  """The value of the dotted `key` in `config`, or None where the config lacks it."""
  node = config
  for name in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      return None
    node = node[name]
  return node


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `config.<key>` from its command-line text, keeping the field's type."""
  *parents, leaf = key.split(".")
  node = config
  for depth, name in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise ConfigError(f"unknown config key '{'.'.join(parents[:depth + 1])}' (in --config.{key})")
    node = node[name]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ""
    raise ConfigError(f"unknown config key '{key}'" + (f"; known here: {known}" if known else ""))
  old = node[leaf]
  value = _parse_value(text)
  if isinstance(old, str) and not isinstance(value, str):
    value = text  # e.g. --config.model.dtype=float32 must stay a string.
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  try:
    node[leaf] = value
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config key '{key}' expects {type(old).__name__}, got '{text}'") from e


def split_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]]:
  """Splits `--config.KEY=VALUE` (or `--config.KEY VALUE`) overrides from the other arguments:
  ({KEY: VALUE}, the rest in order)."""
  overrides, rest, i = {}, [], 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise ConfigError(f"{arg} needs a value")
        i, value = i + 1, argv[i + 1]
      overrides[key] = value
    else:
      rest.append(arg)
    i += 1
  return overrides, rest


def override_config(config: ml_collections.ConfigDict, overrides: dict[str, str]
                    ) -> ml_collections.ConfigDict:
  """Returns a copy of `config` with every override applied."""
  config = ml_collections.ConfigDict(config.to_dict())
  for key, text in overrides.items():
    apply_override(config, key, text)
  return config


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to `workdir/config.json`."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise UserError(f"'{path}' does not exist; is '{workdir}' a training workdir?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))
