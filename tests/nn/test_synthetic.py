"""The nuclei image generator and its class maps."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_pyramids.nn.synthetic import classes_from_labels, make_nuclei_image


def test_synthetic_is_seeded_and_cores_split_touching_nuclei():
    a, la = make_nuclei_image((96, 96), 5)
    b, lb = make_nuclei_image((96, 96), 5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    labels = np.zeros((20, 20), np.int32)
    labels[5:15, 2:10], labels[5:15, 10:18] = 1, 2
    classes = classes_from_labels(labels)
    assert (classes[labels == 0] == 0).all()  # the rim never leaves the nuclei
    assert (classes[labels > 0] > 0).all()
    # the two cores do not touch: each nucleus seeds one instance
    cores, n = ndi.label(classes == 1)
    assert n == 2
    assert set(np.unique(labels[cores == 1])) == {1}
    assert set(np.unique(labels[cores == 2])) == {2}
    # the touching line and the outlines are rim
    assert list(classes[10, 8:12]) == [2, 2, 2, 2]
    assert classes[5, 5] == 2 and classes[9, 5] == 1
    with pytest.raises(ValueError, match="core_fraction"):
        classes_from_labels(labels, core_fraction=1.5)
