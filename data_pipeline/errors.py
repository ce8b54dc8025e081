"""Errors caused by what the user gave (config, paths, flags): reported as one line, no traceback."""


class UserError(Exception):
  """Bad input; the message names the value or file and what was expected."""


class EmptySplitError(UserError):
  """A config of a store would have a split without frames; the dataset's other configs may
  still build."""
