"""Sample data (File > Open Sample > napari-pyramids), all available offline.

Photos come from scikit-image's bundled images. The nuclei volume and the 2-D
nuclei image are generated (scikit-image's ``cells3d`` and ``human_mitosis`` are
downloads, which offline machines cannot make), and their layer names say so.
"""

from __future__ import annotations

import numpy as np


def astronaut():
    """Eileen Collins, RGB 512x512 (scikit-image, public domain NASA photo)."""
    from skimage import data

    return [(data.astronaut(), {"name": "astronaut", "rgb": True}, "image")]


def _generated_volume(shape=(64, 256, 256), seed=0) -> np.ndarray:
    """Nuclei-like blobs: random ellipsoids, blurred, with shot noise (uint16)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    vol = np.zeros(shape, np.float32)
    for _ in range(60):
        centre = rng.uniform((6, 12, 12), np.subtract(shape, (6, 12, 12)))
        radii = rng.uniform((4, 8, 8), (7, 16, 16))
        lo = np.maximum(np.floor(centre - radii), 0).astype(int)
        hi = np.minimum(np.ceil(centre + radii) + 1, shape).astype(int)
        grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
        box = vol[tuple(slice(a, b) for a, b in zip(lo, hi))]
        box[inside] = rng.uniform(0.4, 1.0)
    vol = ndi.gaussian_filter(vol, (1.5, 2.0, 2.0))
    counts = rng.poisson(vol * 2000 + 100)
    return counts.astype(np.uint16)


def nuclei_volume():
    """A 3-D (z, y, x) volume of generated nuclei-like blobs (uint16, offline)."""
    return [
        (
            _generated_volume(),
            {"name": "generated nuclei volume", "colormap": "magma"},
            "image",
        )
    ]


def nuclei_2d():
    """A generated 2-D fluorescence image of nuclei (512x512), with touching ones.

    Drawn by :mod:`napari_pyramids.nn.synthetic` (the generator the shipped
    "nuclei" model was pretrained on before its training on real nuclei).
    """
    from napari_pyramids.nn.synthetic import make_nuclei_image

    image, _ = make_nuclei_image((512, 512), np.random.default_rng(5))
    return [(image, {"name": "synthetic nuclei", "colormap": "gray"}, "image")]


def blend_pair_arrays(size: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(cat, coffee, mask)``: two uint8 RGB crops and a uint8 label mask.

    A cat's face (``chelsea``) and a cup of coffee (``coffee``), both bundled
    with scikit-image, cropped to the same ``size`` x ``size`` grid; the mask is
    1 on the left half (take the cat) and 0 on the right.
    """
    from skimage import data

    cat = data.chelsea()[:size, 80 : 80 + size]
    coffee = data.coffee()[50 : 50 + size, 150 : 150 + size]
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[:, : size // 2] = 1
    return cat, coffee, mask


def blend_pair():
    """Cat, coffee and a half-and-half mask: cut, feather and pyramid blends differ.

    A hard cut shows the border, a wide feather ghosts the spoon over the fur,
    and the pyramid blend joins the two without either.
    """
    cat, coffee, mask = blend_pair_arrays()
    return [
        (coffee, {"name": "coffee", "rgb": True}, "image"),
        (cat, {"name": "cat", "rgb": True}, "image"),
        (mask, {"name": "blend mask"}, "labels"),
    ]


#: One coin of scikit-image's ``coins``: (top, left, height, width) in pixels.
COIN = (176, 252, 52, 52)


def coins_with_template():
    """Scikit-image's coins photo and a rectangle over one coin (the template).

    Open it, then Layers > Register > Template search and press Search: the
    other coins are found (raise "max matches"). There is no hippo offline;
    24 similar coins show several matches better than one eye would.
    """
    from skimage import data

    top, left, height, width = COIN
    # rectangle on pixel edges, so it covers exactly rows top..top+height-1
    y0, x0, y1, x1 = top - 0.5, left - 0.5, top + height - 0.5, left + width - 0.5
    rectangle = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]])
    return [
        (data.coins(), {"name": "coins"}, "image"),
        (
            [rectangle],
            {
                "name": "template rectangle",
                "shape_type": "rectangle",
                "edge_color": "cyan",
                "face_color": "transparent",
                "edge_width": 2,
            },
            "shapes",
        ),
    ]


#: The astronaut's eye in scikit-image's ``astronaut``: (top, left, height, width)
#: in pixels, and how much closer the view the template comes from is.
EYE = (84, 184, 36, 48)
ZOOM = 1.6


def zoomed_template_arrays():
    """``(astronaut, template, (corner, scale))``: the template is the eye cut
    from a copy of the photo zoomed by ZOOM (a view 1.6x as close), so in the
    photo the eye is ``1 / ZOOM`` times the template's size. ``corner`` is the
    eye box's top-left there: ``cv2.resize`` maps copy pixel ``u`` to photo
    coordinate ``(u + 0.5) / ZOOM - 0.5``."""
    import cv2
    from skimage import data

    photo = data.astronaut()
    closer = cv2.resize(photo, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_CUBIC)
    top, left, height, width = (round(v * ZOOM) for v in EYE)
    template = closer[top : top + height, left : left + width].copy()
    corner = tuple((v + 0.5) / ZOOM - 0.5 for v in (top, left))
    return photo, template, (corner, 1 / ZOOM)


def zoomed_template():
    """Scikit-image's astronaut and her eye cut from a 1.6x closer view.

    Open it, then Layers > Register > Template search (it searches the
    astronaut for the eye layer when no rectangle is drawn), set scales 0.5-2
    and press Search: the eye is found at scale 0.625 (1 / 1.6).
    """
    photo, template, _ = zoomed_template_arrays()
    return [
        (photo, {"name": "astronaut", "rgb": True}, "image"),
        # beside the photo, not over it
        (
            template,
            {
                "name": "eye from a closer view",
                "rgb": True,
                "translate": (0, photo.shape[1] + 16),
            },
            "image",
        ),
    ]
