"""Coarse-to-fine template search with zero-mean normalised cross-correlation.

The score is ZNCC (Pearson correlation between the template and an image
window), the quantity ``skimage.feature.match_template`` and OpenCV's
``TM_CCOEFF_NORMED`` compute: 1 for a perfect match up to brightness and contrast,
-1 for a perfect negative. It is undefined where the template or the image window
is flat (zero variance); this module never reports a score for such a window.

:func:`zncc_map` scores every position (exhaustive search). :func:`find_template`
gets the same peak far faster, the way Burt & Adelson proposed using a pyramid for
search [1]_ and Tanimoto for hierarchical template matching [2]_: build Gaussian
pyramids of the image and of the template, score every position only at the
coarsest octave (where the image has ``4**L`` times fewer pixels and the template
too), keep the best few local maxima there, and refine each octave by octave,
scoring only a small window around ``2 * position`` at every finer octave. At
octave 0 the scores are exact ZNCC values, equal to the exhaustive map's.

A template found in the image unchanged (cut from it) scores a perfect 1 there,
which no window can beat; a cheaper probe on block means of the image looks for
that first (:mod:`~napari_pyramids.core.copy_probe`) and ends the search when it
finds it.

Octave ``k`` pixel ``j`` sits on level-0 pixel ``j * 2**k`` (DESIGN.md), so a
candidate at ``p`` in octave ``k + 1`` lands near ``2 p`` in octave ``k``.

References
----------
.. [1] P. J. Burt and E. H. Adelson, "The Laplacian Pyramid as a Compact Image
   Code", IEEE Trans. Communications 31(4), 532-540, 1983.
.. [2] S. L. Tanimoto, "Template matching in pyramids", Computer Graphics and
   Image Processing 16(4), 356-369, 1981.
.. [3] J. P. Lewis, "Fast Normalized Cross-Correlation", Vision Interface, 1995
   (window sums from integral images).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from napari_pyramids.core.copy_probe import find_copy
from napari_pyramids.core.pyramid import pyramid_plan
from napari_pyramids.core.scale_search import iter_scaled_search
from napari_pyramids.core.search_engine import (
    FOLLOW,
    SEARCH_MIN_SIZE,
    Match,
    OctaveTrace,
    _Search,
    _shortlist,
    image_levels,
)
from napari_pyramids.core.search_inputs import _check_whole, prepared, safe_image
from napari_pyramids.core.zncc import _Scorer, _template_scorer, zncc_map
from napari_pyramids.progress import Cancel, Progress, drive

__all__ = ["Match", "OctaveTrace", "find_template", "iter_find_template", "zncc_map"]


def iter_find_template(
    image,
    template,
    *,
    max_matches: int = 1,
    min_score: float | None = None,
    levels: int | None = None,
    candidates: int = 12,
    refine_radius: int = 3,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = SEARCH_MIN_SIZE,
    scales: tuple[float, float] | None = None,
) -> Iterator[OctaveTrace]:
    """:func:`find_template` as a generator: yields each octave's trace as it is
    done (coarsest first) and returns the list of matches.

    Widgets use it to report progress and to be cancelled between octaves.
    """
    # the image is checked on the way: the copy probe checks what it scores,
    # the searches proper scale it whole (safe_image) and find NaN in pyramids
    image, template, layout = prepared(
        image, template, channel_axis, image_checks=False
    )
    exact = _template_scorer(layout.internal(template))  # raises if it is flat
    _check_whole("max_matches", max_matches, 1)
    _check_whole("candidates", candidates, 1)
    _check_whole("refine_radius", refine_radius, 1)
    if min_score is not None and not -1 <= min_score <= 1:
        raise ValueError(f"min_score must lie in [-1, 1] (ZNCC), got {min_score}")
    options = dict(
        max_matches=max_matches,
        min_score=min_score,
        count=max(candidates, 2 * max_matches),
        refine_radius=refine_radius,
    )
    if scales is not None:
        return (
            yield from iter_scaled_search(
                safe_image(image), template, layout, scales, levels, min_size, **options
            )
        )
    kw = dict(channel_axis=channel_axis, reduce_z=reduce_z and layout.ndim == 3)
    # The template decides the depth: its coarsest octave keeps >= min_size px.
    # Its pyramid is made as the image's is, so the octaves correspond exactly.
    _, depth = pyramid_plan(template.shape, levels, min_size=min_size, **kw)
    factor = np.array([2 if kw["reduce_z"] else 1, 2, 2])
    internal = layout.internal(image), layout.internal(template)
    copy = find_copy(*internal, layout, depth, factor, options, exact=exact)
    if copy is not None:  # found unchanged: nothing can beat it
        trace, matches = copy
        yield from trace
        return matches
    image = safe_image(image)
    tpl_levels = image_levels(template, depth, layout, kw["reduce_z"])
    scorers = [exact] + [_Scorer(t, rough=True) for t in tpl_levels[1:]]
    while len(scorers) > 1 and scorers[-1].flat:
        scorers.pop()  # pure fine texture is flat when reduced: start finer
    img_levels = image_levels(image, len(scorers), layout, kw["reduce_z"])
    search = _Search(img_levels, layout, factor, **options)
    top, positions, values, coarse = search.start(scorers)
    followed = _shortlist(values, search.count, search.most, FOLLOW)
    rest = positions[followed:]
    positions, values = positions[:followed], values[:followed]
    parents = np.full(len(positions), -1)
    trace = []
    for k in range(top, -1, -1):
        if k < top:
            positions, values, parents = search.refine(k, scorers[k], positions)
        if k == 0 and top > 0:
            positions, values, parents = search.check(
                scorers, coarse, top, rest, (positions, values, parents)
            )
        octave = search.trace(k, positions, values, parents, np.ones(len(values)))
        trace.append(octave)
        yield octave
    return search.matches(tuple(trace), lambda _: scorers[0])


def find_template(
    image,
    template,
    *,
    max_matches: int = 1,
    min_score: float | None = None,
    levels: int | None = None,
    candidates: int = 12,
    refine_radius: int = 3,
    channel_axis: int | None = None,
    reduce_z: bool = False,
    min_size: int = SEARCH_MIN_SIZE,
    scales: tuple[float, float] | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> list[Match]:
    """Find ``template`` in ``image`` coarse-to-fine; best matches first.

    First a probe for an exact copy (:mod:`~napari_pyramids.core.copy_probe`):
    the best few (PROBED) local maxima of the start octave of block means are
    each scored exactly at octave 0 over the window their block leaves open;
    when one reaches a ZNCC within 1e-4 of a perfect 1 (a template cut
    from the searched image), nothing can beat that and the search is done.
    Otherwise the search proper runs on Gaussian pyramids: the coarsest octave
    is searched exhaustively, its best ``candidates`` local maxima are refined,
    the octave-0 scores (exact ZNCC) ranked, and the winner checked: every
    region whose coarse score is within :func:`doubt_margin` of it (so could
    still beat it) is scored exhaustively at octave 0. On a 2048x2048 image
    with a 64x64 template cut from it this is 15 to 20 times faster than
    exhaustive OpenCV search, and its peak scored as high as the exhaustive one
    in every case of the benchmark's agreement study and speed table
    (benchmarks/bench_search.py, which prints the numbers).

    Parameters
    ----------
    image : array_like
        2-D ``(y, x)`` image or 3-D ``(z, y, x)`` volume, optionally with colour.
    template : array_like
        What to look for: same number of dimensions and channels, not larger than
        ``image``, not flat.
    max_matches : int
        Most matches to return. Matches overlapping by more than half their box
        along every axis count as one (non-maximum suppression).
    min_score : float, optional
        Drop matches whose ZNCC is below this value in [-1, 1].
    levels : int, optional
        Pyramid levels used, level 0 included (1 is exhaustive search). ``None``
        reduces until the template's smallest side would drop below ``min_size``.
    candidates : int
        Fewest candidates followed from the coarsest octave (at least
        ``2 * max_matches``); all those scoring within MARGIN of the best are
        followed too, up to MAX_CANDIDATES per 512x512 pixels of the image.
    refine_radius : int
        Half-width of the window scored around each candidate at finer octaves
        (a search over ``scales`` fits each candidate's corner and scale
        continuously instead, and does not use it).
    channel_axis : int, optional
        Colour axis of image and template (scored jointly, as skimage does).
    reduce_z : bool
        Reduce z as well (isotropic volumes); by default z keeps its resolution.
    min_size : int
        Smallest template side kept at the coarsest octave when ``levels`` is None.
    scales : (float, float), optional
        Search the template at every scale in this range (2-D images): the object
        may be ``scales[0]`` to ``scales[1]`` times the template's size. See
        :mod:`napari_pyramids.core.scale_search` for how the scales are searched
        and how close to the best the found scale's ZNCC is. ``None`` searches
        at scale 1 only.
    progress : callable(done, total), optional
        Called after each octave is searched (the coarsest first).
    cancel : callable() -> bool, optional
        Checked between octaves; True stops the search and raises
        :class:`napari_pyramids.progress.Cancelled`.

    Returns
    -------
    list of Match
        At most ``max_matches``, best score first. Each carries the search trace,
        its sub-pixel corner and its scale.

    Raises
    ------
    ValueError
        Template larger than the image, flat template (ZNCC undefined), image
        flat everywhere, NaN values, parameters out of range, or a scale range
        that is inverted, not positive, or makes the template larger than the
        image or smaller than a few pixels.
    """
    search = iter_find_template(
        image,
        template,
        max_matches=max_matches,
        min_score=min_score,
        levels=levels,
        candidates=candidates,
        refine_radius=refine_radius,
        channel_axis=channel_axis,
        reduce_z=reduce_z,
        min_size=min_size,
        scales=scales,
    )
    searched = []

    def count(trace: OctaveTrace) -> tuple[int, int]:  # the coarsest comes first
        # octaves, done of all: the probe for a copy skips those in between
        searched.append(trace.octave)
        return searched[0] - trace.octave + 1, searched[0] + 1

    return drive(search, progress, cancel, count=count)
