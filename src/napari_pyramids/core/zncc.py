"""Zero-mean normalised cross-correlation (ZNCC) of a template against image
windows.

Window moments come from float64 integral images (exact) or float32 box filters
(rough, for the coarse octaves' maps, which only rank candidates); the
numerator is OpenCV's correlation of the centred image with the zero-mean
template. :class:`_Scorer` holds one template ready to score; :func:`zncc_map`
is the public exhaustive map.

References
----------
.. [1] J. P. Lewis, "Fast Normalized Cross-Correlation", Vision Interface, 1995
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from napari_pyramids.core.search_inputs import prepared

__all__ = ["zncc_map"]


#: A window whose standard deviation is below this fraction of its RMS value is
#: flat to float32 precision: its ZNCC is undefined and it is never reported.
FLAT_TOLERANCE = 1e-5


def _is_flat(std, rms) -> bool:
    """True where a window (or template) of this standard deviation and RMS
    value is flat to float32 precision (:data:`FLAT_TOLERANCE`)."""
    return std <= FLAT_TOLERANCE * rms


def _window_moments(x: np.ndarray, shape: tuple[int, int, int]):
    """Sums of ``x`` and ``x**2`` over every ``shape`` window of ``x``.

    ``x`` is ``(Z, H, W, C)`` float32; channels are summed. OpenCV's integral
    images accumulate in float64 (one pass gives both; Lewis [1]_), then each (y, x)
    window is four lookups and z windows are differences of a running sum.
    """
    tz, th, tw = shape
    z, h, w, n_ch = x.shape

    def windows(ii):
        out = ii[th:, tw:] - ii[:-th, tw:]
        out -= ii[th:, :-tw]
        out += ii[:-th, :-tw]
        return out

    if z == 1 and n_ch == 1:  # one grey plane: no sums to add up
        plane = np.ascontiguousarray(x[0, :, :, 0])
        sums, squares = cv2.integral2(plane, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        return windows(sums)[None], windows(squares)[None]
    out = np.zeros((2, z, h - th + 1, w - tw + 1))
    for k in range(z):
        for c in range(n_ch):
            plane = np.ascontiguousarray(x[k, :, :, c])
            for i, ii in enumerate(
                cv2.integral2(plane, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
            ):
                out[i, k] += windows(ii)
    if tz > 1:
        run = np.concatenate([np.zeros_like(out[:, :1]), out.cumsum(axis=1)], 1)
        out = run[:, tz:] - run[:, :-tz]
    return out[0], out[1]


def _box_moments(plane: np.ndarray, shape: tuple[int, int]):
    """Float32 sums of ``plane`` and ``plane**2`` over every ``shape`` window, as
    ``(h, w)`` arrays (OpenCV box filters; see :class:`_Scorer`'s ``rough``);
    the channels of an ``(H, W, C)`` plane are summed."""
    th, tw = shape
    h, w = plane.shape[0] - th + 1, plane.shape[1] - tw + 1
    options = dict(normalize=False, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    if plane.ndim == 3:
        total = plane.sum(axis=-1, dtype=np.float32)
        power = np.einsum("ijc,ijc->ij", plane, plane, dtype=np.float32)
        sums = cv2.boxFilter(total, cv2.CV_32F, (tw, th), **options)[:h, :w]
        squares = cv2.boxFilter(power, cv2.CV_32F, (tw, th), **options)[:h, :w]
        return sums, squares
    sums = cv2.boxFilter(plane, cv2.CV_32F, (tw, th), **options)[:h, :w]
    squares = cv2.sqrBoxFilter(plane, cv2.CV_32F, (tw, th), **options)[:h, :w]
    return sums, squares


#: A rough (float32) window whose variance is below this fraction of its mean
#: square counts as flat: float32 sums cannot resolve less.
_ROUGH_FLAT = 1e-5


def _rough_variance(plane: np.ndarray, shape, mean_square: float):
    """``(n * variance, flat)`` of every ``shape`` window of a centred float32
    ``(H, W)`` or ``(H, W, C)`` ``plane`` (channels jointly) whose mean square
    before centring was ``mean_square``: box moments in float32, and a window
    is flat where its variance is below FLAT_TOLERANCE of that RMS value or
    below what float32 sums resolve (_ROUGH_FLAT of the window's own mean
    square)."""
    size = shape[0] * shape[1] * (plane.shape[2] if plane.ndim == 3 else 1)
    s1, s2 = _box_moments(plane, shape)
    var = cv2.subtract(s2, cv2.multiply(s1, s1, scale=1 / size))
    # NumPy, not OpenCV, where a scalar meets a map: OpenCV reads a scalar as
    # four channels and answers a 1x1 map with a 4x1 one
    limit = np.maximum(s2 * _ROUGH_FLAT, FLAT_TOLERANCE**2 * size * mean_square)
    return var, var <= limit


def _correlate(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid cross-correlation of 2-D (or ``(h, w, c)``, channels summed) float32.

    OpenCV's ``matchTemplate`` works in the Fourier domain; for one channel and
    a kernel of at most 10x10 the direct ``filter2D`` is about twice as fast.
    """
    th, tw = kernel.shape[:2]
    if kernel.ndim == 2 and th * tw <= 100:
        full = cv2.filter2D(
            plane, cv2.CV_32F, kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
        )
        return full[: plane.shape[0] - th + 1, : plane.shape[1] - tw + 1]
    return cv2.matchTemplate(plane, kernel, cv2.TM_CCORR)


def _ccorr(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Valid cross-correlation of ``(Z, H, W, C)`` float32 arrays, summed over z, c."""
    tz = template.shape[0]
    n_ch = image.shape[-1]
    out = None
    # One channel goes as a 2-D plane (so _correlate may filter directly); cv2
    # sums up to 4 channels itself; more go one by one.
    if n_ch == 1:
        groups = [0]
    elif n_ch <= 4:
        groups = [slice(None)]
    else:
        groups = [slice(c, c + 1) for c in range(n_ch)]
    for z in range(image.shape[0] - tz + 1):
        plane = None
        for dz in range(tz):
            for g in groups:
                r = _correlate(
                    np.ascontiguousarray(image[z + dz][..., g]),
                    np.ascontiguousarray(template[dz][..., g]),
                )
                plane = r if plane is None else plane + r
        if out is None:
            out = np.empty((image.shape[0] - tz + 1,) + plane.shape, np.float32)
        out[z] = plane
    return out


def centred(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``x`` less its mean, in float32, and the mean square of ``x`` before
    centring: what :class:`_Scorer` scores, free of float32 cancellation for
    images with a large offset (the mean changes no ZNCC)."""
    mean = float(x.mean(dtype=np.float64))
    r = np.subtract(x, mean, dtype=np.float32)
    return r, float(np.vdot(r, r)) / r.size + mean * mean


def plane_of(region: np.ndarray) -> np.ndarray:
    """A ``(1, H, W, C)`` region as the ``(H, W)`` grey or ``(H, W, C)`` colour
    plane :meth:`_Scorer._rough` takes."""
    return region[0] if region.shape[-1] > 1 else region[0, :, :, 0]


class _Scorer:
    """ZNCC of one (internal-layout) template against image regions.

    The numerator is OpenCV's plain cross-correlation (``TM_CCORR``) of the
    centred region with the zero-mean template, summed over channels and z
    planes (colour and volumes are correlated jointly, as skimage does; OpenCV's
    ``TM_CCOEFF_NORMED`` would centre each channel on its own mean). The window
    variances come from float64 integral images, which also tell which windows are
    flat. For small templates this is several times faster than
    ``TM_CCOEFF_NORMED``, whose normalisation pass dominates there.
    """

    def __init__(self, template: np.ndarray, rough: bool = False, blur: float = 0):
        t = template.astype(np.float64)
        # numpy's mean, less its call overhead (a third of this scorer's set-up)
        mean = float(np.add.reduce(t, axis=None)) / t.size
        t -= mean
        self.shape = template.shape[:3]
        self.size = t.size
        self.zero_mean = t.astype(np.float32)
        # OpenCV's one-thread sum, not np.vdot: OpenBLAS runs float64 dot
        # products of 16384 values or more on every core, whose idle threads
        # then spin and double the CPU time of a search with a large template
        squares = cv2.norm(t.reshape(-1, 1), cv2.NORM_L2SQR)
        self.norm = math.sqrt(squares)
        self.std = self.norm / math.sqrt(self.size)
        rms = math.sqrt(squares / self.size + mean * mean)
        #: True when this template is flat to float32 precision (ZNCC undefined)
        self.flat = _is_flat(self.std, rms)
        #: Gaussian blur (sigma, pixels) given to each region before scoring: a
        #: template enlarged to a scale above 1 is that much blurrier than the
        #: image (see :mod:`~napari_pyramids.core.scale_search`)
        self.blur = blur
        #: one grey plane: many candidates can be refined in one call (cuts laid
        #: side by side, which a blur would mix)
        self.plain = template.shape[0] == 1 and template.shape[-1] == 1 and not blur
        #: window moments in float32 (2-D, grey or up to four channels): for
        #: the coarse octaves' maps, which only rank candidates, at a fraction
        #: of the float64 cost
        self.rough = rough and template.shape[0] == 1 and template.shape[-1] <= 4

    def __call__(self, region: np.ndarray) -> np.ndarray:
        """ZNCC at every valid position of ``region``; NaN where a window is flat
        (standard deviation below FLAT_TOLERANCE x the region's RMS value).

        The region's mean is removed first: it changes no score (the template
        sums to zero) and keeps float32 correlation and variance free of
        cancellation for images with a large offset.
        """
        if self.blur:
            region = np.stack(
                [
                    cv2.GaussianBlur(plane.astype(np.float32), (0, 0), self.blur)
                    for plane in region
                ]
            ).reshape(region.shape)
        r, mean_square = centred(region)
        if self.rough:
            return self._rough(plane_of(r), mean_square)[None]
        s1, var = _window_moments(r, self.shape)
        tolerance = FLAT_TOLERANCE**2 * self.size * mean_square
        s1 *= s1
        s1 /= self.size
        var -= s1  # n * variance of each window
        flat = var <= tolerance
        np.sqrt(var, out=var, where=~flat)
        var *= self.norm
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.divide(_ccorr(r, self.zero_mean), var)
        score[flat] = np.nan
        return np.clip(score, -1.0, 1.0, out=score)

    def _rough(
        self, plane: np.ndarray, mean_square: float, variance=None
    ) -> np.ndarray:
        """ZNCC map of a centred ``(H, W)`` grey or ``(H, W, C)`` colour plane
        from float32 moments (fewer passes over the map than the exact path:
        OpenCV's element-wise operations; OpenCV sums the channels'
        correlations). ``variance`` is :func:`_rough_variance` of the plane for
        this template's shape where the caller has it already."""
        if variance is None:
            variance = _rough_variance(plane, self.shape[1:], mean_square)
        var, flat = variance
        denominator = cv2.sqrt(var)  # NaN where var < 0: flat anyway
        kernel = self.zero_mean[0] if plane.ndim == 3 else self.zero_mean[0, :, :, 0]
        score = cv2.divide(_correlate(plane, kernel), denominator, scale=1 / self.norm)
        score[flat] = np.nan
        return np.clip(score, -1.0, 1.0, out=score)

    def best(self, region: np.ndarray):
        """``(index, score)`` of the best window of ``region`` that is not flat,
        or None where every window is flat."""
        scores = self(region)
        if np.isnan(scores).all():
            return None
        at = np.unravel_index(np.nanargmax(scores), scores.shape)
        return tuple(int(i) for i in at), float(scores[at])


def _template_scorer(template: np.ndarray) -> _Scorer:
    """Scorer for the level-0 template; raise if it is flat (ZNCC undefined)."""
    scorer = _Scorer(template)
    if scorer.flat:
        raise ValueError(
            "template is flat (constant, or varying by less than "
            f"{FLAT_TOLERANCE:g} of its magnitude): zero-mean normalised "
            "cross-correlation is undefined for a template without variance. "
            "Pick a region with some texture or edges."
        )
    return scorer


def zncc_map(image, template, *, channel_axis: int | None = None) -> np.ndarray:
    """Exhaustive ZNCC of ``template`` at every position of ``image``.

    The same numbers as ``skimage.feature.match_template(image, template)``
    (``pad_input=False``), computed with OpenCV's correlation and integral images.

    Parameters
    ----------
    image, template : array_like
        2-D ``(y, x)`` or 3-D ``(z, y, x)`` arrays, optionally with a colour axis.
    channel_axis : int, optional
        Colour axis of both arrays; channels are correlated jointly (one mean over
        all channels, as skimage does for an ``(h, w, c)`` template).

    Returns
    -------
    numpy.ndarray
        float32 map with spatial shape ``image - template + 1``; entry ``p`` scores
        the template with its top-left corner at ``p``. Where the image window is
        flat the score is undefined and set to 0, as skimage does.

    Raises
    ------
    ValueError
        If the template is larger than the image, flat, or holds NaN.
    """
    image, template, layout = prepared(image, template, channel_axis)
    scores = _template_scorer(layout.internal(template))(layout.internal(image))
    scores = np.nan_to_num(scores, nan=0.0).astype(np.float32)
    return scores[0] if layout.ndim == 2 else scores
