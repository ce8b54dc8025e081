"""The 68-point iBUG landmark convention shared by every dataset."""
import numpy as np

NUM_LANDMARKS = 68


def _mirror_pairs() -> np.ndarray:
  """Index of each point's mirror image under a horizontal flip."""
  pairs = [(i, 16 - i) for i in range(17)]                       # jaw
  pairs += [(17 + i, 26 - i) for i in range(5)]                  # brows
  pairs += [(31, 35), (32, 34), (33, 33)]                        # nostrils
  pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
  pairs += [(48, 54), (49, 53), (50, 52), (51, 51), (55, 59), (56, 58), (57, 57)]
  pairs += [(60, 64), (61, 63), (62, 62), (65, 67), (66, 66)]    # inner lips
  perm = np.arange(NUM_LANDMARKS)
  for a, b in pairs:
    perm[a], perm[b] = b, a
  return perm


FLIP_PERMUTATION = _mirror_pairs()
