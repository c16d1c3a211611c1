"""GUI-free algorithms: numpy arrays in, numpy arrays out. No napari, no Qt."""
