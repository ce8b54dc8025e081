"""wsrtl_jax: JAX/Flax reimplementation of WSRTL and CLP for facial action unit recognition."""
