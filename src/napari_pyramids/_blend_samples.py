"""Sample data for blending: two photos and a mask that tell the methods apart.

Made from images that ship with scikit-image (no download): a cat's face
(``chelsea``) and a cup of coffee (``coffee``), cropped to the same 300 x 300
grid, and a Labels mask that takes the left half from the cat. A hard cut shows
the border, a wide feather ghosts the spoon over the fur, and the pyramid blend
joins them without either.
"""

from __future__ import annotations

import numpy as np

#: Side of the square crops, in pixels.
SIZE = 300


def blend_pair_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(cat, coffee, mask)``: two uint8 RGB crops and a uint8 label mask.

    The mask is 1 on the left half (take the cat) and 0 on the right.
    """
    from skimage import data

    cat = data.chelsea()[:SIZE, 80 : 80 + SIZE]
    coffee = data.coffee()[50 : 50 + SIZE, 150 : 150 + SIZE]
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[:, : SIZE // 2] = 1
    return cat, coffee, mask


def blend_pair() -> list[tuple]:
    """npe2 sample data: the cat, the coffee and the blend mask as layers."""
    cat, coffee, mask = blend_pair_arrays()
    return [
        (coffee, {"name": "coffee"}, "image"),
        (cat, {"name": "cat"}, "image"),
        (mask, {"name": "blend mask"}, "labels"),
    ]
