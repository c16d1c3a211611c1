"""The segmentation defaults, in one place that imports neither torch nor Qt.

The API (:func:`.infer.segment`), the Segment action and widget and the
command line read them (and the one check of the core threshold) from here.
The thresholds are chosen on the tuning fold of the training data
(:func:`.data.split_ids`; ``benchmarks/tune_segment.py``), never on the
validation fold; ``weights/nuclei.md`` records the choice.

The instance-extraction values (``FOREGROUND_BELOW``, ``GROW``, ``MIN_SIZE``,
``MIN_SEED``, ``RESCALE_TOLERANCE``) are read from this module when they are
used, not copied at import, so the tuning script varies them here for every
path (in memory, whole slide, the diameter estimate) at once.
"""

#: Core probability above which a pixel seeds a nucleus.
CORE_THRESHOLD = 0.3
#: A pixel belongs to a nucleus (core or rim) where P(background) is below this.
FOREGROUND_BELOW = 0.3
#: Nuclei within this factor of the trained diameter are segmented unresampled.
RESCALE_TOLERANCE = 1.2
#: Instance extraction at the trained nucleus size (pixels): how far seeds grow
#: over the rim, the smallest nucleus kept, the smallest core that seeds one.
GROW, MIN_SIZE, MIN_SEED = 20, 30, 4
#: Side (working pixels) of the window the diameter estimate looks at.
ESTIMATE_WINDOW = 384
#: The estimate trusts a scale whose nucleus size (image pixels) a neighbouring
#: scale measures within this factor.
SIZE_AGREEMENT = 1.35
#: Tiles of at most this many pixels square, sharing ``OVERLAP`` with each
#: neighbour; the image-pooling branch sees the image block-averaged to at
#: most ``CONTEXT_SIZE`` on its long side.
TILE_SIZE, OVERLAP, CONTEXT_SIZE = 1024, 64, 1024


def check_threshold(threshold: float) -> float:
    """``threshold`` if it lies strictly between 0 and 1, else a ValueError."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    return threshold
