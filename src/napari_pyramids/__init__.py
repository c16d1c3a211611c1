"""napari-pyramids: image pyramids in napari."""
