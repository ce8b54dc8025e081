"""The AUs each dataset labels, in label order (the datasets table of docs/DATA.md). No TensorFlow
here."""

AU_SETS: dict[str, tuple[int, ...]] = {
    "bp4d": (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24),
    "disfa": (1, 2, 4, 6, 9, 12, 25, 26),
    "gft": (1, 2, 4, 6, 10, 12, 14, 15, 23, 24),
    "synthau": (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26),
}

# AUs that have a centre rule (JAA-Net's, data_pipeline.alignment), in the order the pipelines
# stream their centres.
CENTRE_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)


def aus_of(dataset_name: str) -> tuple[int, ...]:
  """AUs of a tfds name such as 'synthau/tiny'."""
  return AU_SETS[dataset_name.split("/")[0].split(":")[0]]
