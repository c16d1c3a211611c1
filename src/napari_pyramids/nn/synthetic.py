"""Synthetic fluorescence nuclei with exact instance labels, for pretraining and tests.

A nucleus stained with a DNA dye (DAPI, Hoechst) images as a bright, roughly
elliptical blob with a soft edge and some chromatin texture, on a dark,
uneven background. The generator draws that scene with the nuisances real
widefield images have, so a model trained on it transfers:

- sizes that vary within an image and (more) between images: mean diameters
  of about 9 to 50 px, as nuclei are at 10x to 40x magnification, elongated
  (mostly 1 to 1.5 times as long as wide, a few up to 3) and lumpy outlines
  (ellipses with low-order harmonic wobble);
- touching clusters and overlapping nuclei (intensities add, the nucleus on
  top owns the overlap in the labels);
- per-nucleus brightness spread over a decade, dim nuclei included, and a few
  small, very bright (2-6x), ragged "mitotic" nuclei with condensed chromatin;
- chromatin texture, a domed or flat intensity profile;
- uneven background (offset, gradient, low-frequency haze), unlabelled
  out-of-focus blobs and small bright debris;
- optical blur (Gaussian PSF) plus the faint, wide glow of out-of-focus
  light a widefield microscope puts around bright nuclei, Poisson shot noise
  at photon counts from a few to hundreds, Gaussian read noise, gain/offset,
  occasional saturation and uint8 / uint16 quantisation; in some images the
  noise is spatially correlated (a slight blur after it), as in binned,
  resampled or deconvolved images, so smooth noise is not taken for nuclei.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

__all__ = [
    "BACKGROUND",
    "RIM",
    "CLASS_NAMES",
    "CORE",
    "make_nuclei_image",
    "make_dataset",
    "classes_from_labels",
]

BACKGROUND, CORE, RIM = 0, 1, 2
#: Class names by class index (the model's output channels).
CLASS_NAMES = ("background", "core", "rim")


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation.

    Large ``sigma`` is drawn on a coarse grid and upsampled (same statistics,
    a fraction of the cost).
    """
    factor = max(1, int(sigma // 4))
    coarse = tuple(-(-n // factor) + 2 for n in shape)
    field = ndi.gaussian_filter(
        rng.standard_normal(coarse).astype(np.float32), sigma / factor
    )
    if factor > 1:
        field = ndi.zoom(field, factor, order=1)
    field = field[: shape[0], : shape[1]]
    return field / (field.std() + 1e-8)


def _place_centres(rng, shape, radii, cluster_p):
    """Centres for nuclei of the given radii; some touch or overlap a neighbour."""
    height, width = shape
    centres = np.empty((len(radii), 2))
    kept = np.empty(len(radii))
    n = 0
    for radius in radii:
        for _ in range(20):
            if n and rng.random() < cluster_p:
                j = rng.integers(n)
                angle = rng.uniform(0, 2 * np.pi)
                dist = (kept[j] + radius) * rng.uniform(0.7, 1.02)
                centre = centres[j] + dist * np.array([np.sin(angle), np.cos(angle)])
            else:
                centre = rng.uniform(-radius, (height + radius, width + radius))
            gaps = np.hypot(*(centres[:n] - centre).T) - 0.68 * (radius + kept[:n])
            if n == 0 or gaps.min() > 0:
                centres[n], kept[n] = centre, radius
                n += 1
                break
    return centres[:n], kept[:n]


def make_nuclei_image(
    shape: tuple[int, int] = (256, 256), rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic fluorescence image of nuclei and its instance labels.

    Parameters
    ----------
    shape : (int, int)
        Image height and width.
    rng : numpy Generator or int, optional
        Random source or seed; the same seed gives the same image.

    Returns
    -------
    image : ndarray
        float32, uint8 or uint16 (drawn at random), in an arbitrary range.
    labels : ndarray of int32
        0 for background, 1..n for the visible nuclei.
    """
    rng = np.random.default_rng(rng)
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    mean_radius = np.exp(rng.uniform(np.log(4.5), np.log(25.0)))
    coverage = rng.uniform(0.05, 0.45)
    count = int(coverage * height * width / (np.pi * mean_radius**2)) + 1
    radii = np.clip(mean_radius * rng.lognormal(0.0, 0.22, count), 3.0, 45.0)
    centres, radii = _place_centres(rng, shape, radii, cluster_p=rng.uniform(0.1, 0.7))

    signal = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int32)
    texture = _smooth_noise(rng, shape, rng.uniform(0.7, 2.0))
    texture_amp = rng.uniform(0.0, 0.35)
    edge_width = rng.uniform(0.6, 1.8)
    for index, ((cy, cx), radius) in enumerate(
        zip(centres, radii, strict=True), start=1
    ):
        mitotic = rng.random() < 0.05
        if mitotic:
            radius = max(2.5, 0.6 * radius)
        reach = int(np.ceil(radius * 1.6 + 3))
        y0, y1 = max(0, int(cy) - reach), min(height, int(cy) + reach + 1)
        x0, x1 = max(0, int(cx) - reach), min(width, int(cx) + reach + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        dist = np.hypot(dy, dx)
        theta = np.arctan2(dy, dx) - rng.uniform(0, np.pi)
        elong = min(1.0 + rng.exponential(0.4), 3.0)
        a, b = radius * np.sqrt(elong), radius / np.sqrt(elong)
        outline = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
        wobble = 0.18 if mitotic else 0.06
        for k in (2, 3, 4, 5):
            outline *= 1 + rng.normal(0, wobble / k * 2) * np.cos(
                k * theta + rng.uniform(0, 2 * np.pi)
            )
        inside = np.clip((outline - dist) / edge_width + 0.5, 0.0, 1.0)
        profile = (
            1.0
            - rng.uniform(0.0, 0.45)
            * np.clip(dist / np.maximum(outline, 1e-3), 0, 1) ** 2
        )
        brightness = rng.lognormal(0.0, 0.5) * (
            rng.uniform(2.0, 6.0) if mitotic else 1.0
        )
        amp = texture_amp * (2.5 if mitotic else 1.0)
        tex = np.clip(1.0 + amp * texture[y0:y1, x0:x1], 0.1, None)
        signal[y0:y1, x0:x1] += brightness * inside * profile * tex
        labels[y0:y1, x0:x1][inside >= 0.5] = index

    # Unlabelled clutter: out-of-focus haze blobs and small bright debris.
    clutter = np.zeros(shape, np.float32)
    for _ in range(rng.poisson(1.5)):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(10, 40)
        clutter += rng.uniform(0.05, 0.25) * np.exp(
            -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)
        )
    specks = np.zeros(shape, np.float32)
    n_specks = rng.poisson(rng.uniform(0, 12) * height * width / 256**2)
    specks[rng.integers(0, height, n_specks), rng.integers(0, width, n_specks)] = (
        rng.uniform(0.5, 6.0, n_specks)
    )
    clutter += ndi.gaussian_filter(specks, rng.uniform(0.6, 1.2)) * 4

    background = rng.uniform(0.0, 0.3) + rng.uniform(0.0, 0.25) * _smooth_noise(
        rng, shape, height / 4
    ).clip(-2, 2)
    gy, gx = rng.uniform(-0.15, 0.15, 2)
    background = np.clip(
        background + gy * (yy / height - 0.5) + gx * (xx / width - 0.5), 0.0, None
    )

    # Widefield optics: a sharp core (in-focus PSF) plus a faint, wide glow of
    # out-of-focus light around every bright object.
    psf = rng.uniform(0.4, 2.0)
    scene = ndi.gaussian_filter(signal + clutter, psf) + background
    scene += rng.uniform(0.0, 0.2) * ndi.gaussian_filter(
        signal, psf * rng.uniform(4.0, 8.0)
    )
    photons = np.exp(rng.uniform(np.log(8), np.log(600)))
    noisy = rng.poisson(scene * photons).astype(np.float32)
    noisy += rng.normal(0.0, rng.uniform(0.0, 3.0), shape).astype(np.float32)
    if rng.random() < 0.3:
        noisy = ndi.gaussian_filter(noisy, rng.uniform(0.4, 1.0))
    image = noisy * rng.lognormal(0.0, 1.0) + rng.uniform(0, 100)

    kind = rng.random()
    if kind < 0.35:  # 8-bit camera, sometimes saturated
        top = np.percentile(image, rng.uniform(99.5, 100.0))
        image = np.clip(image / max(top, 1e-6) * 255, 0, 255).astype(np.uint8)
    elif kind < 0.7:
        top = np.percentile(image, 100.0)
        image = np.clip(
            image / max(top, 1e-6) * rng.uniform(1000, 65535), 0, 65535
        ).astype(np.uint16)
    return image, labels


def classes_from_labels(labels: np.ndarray, core_fraction: float = 0.5) -> np.ndarray:
    """Per-pixel classes: background 0, core 1, rim 2 (uint8).

    The core of a nucleus is where the distance to its outline is at least
    ``core_fraction`` of the largest such distance in that nucleus; the rest of
    the nucleus is rim. Cores of touching or overlapping nuclei are kept apart by
    two rims that grow with the nuclei, which a network at output stride 8 can
    learn far more reliably than a one-pixel dividing line; the cores then seed
    one instance each and grow back over the rim
    (:func:`.instances.instances_from_masks`).
    """
    if not 0.0 < core_fraction < 1.0:
        raise ValueError(f"core_fraction must be in (0, 1), got {core_fraction}")
    foreground = labels > 0
    outline = find_boundaries(labels, mode="inner")
    dist = ndi.distance_transform_edt(foreground & ~outline)
    count = int(labels.max())
    peak = np.zeros(count + 1)
    if count:
        peak[1:] = ndi.maximum(dist, labels, np.arange(1, count + 1))
    core = foreground & (dist > 0) & (dist >= core_fraction * peak[labels])
    classes = foreground.astype(np.uint8) * RIM
    classes[core] = CORE
    return classes


def make_dataset(
    count: int, shape: tuple[int, int] = (256, 256), seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (image, labels) pairs drawn from one seed."""
    rng = np.random.default_rng(seed)
    return [make_nuclei_image(shape, rng) for _ in range(count)]
