"""`python -m wsrtl_jax COMMAND ...`."""
from wsrtl_jax import cli

if __name__ == "__main__":
  cli.main()
