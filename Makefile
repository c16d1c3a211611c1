# napari-pyramids: the two commands of the README, and their helpers.
#   make demo          set everything up, then open napari with the plugin and sample
#                      data (no display: render the window to build/demo.png instead)
#   make test          set everything up, then run the whole test suite
#   make test-pyside6  the widget tests again under PySide6 (.ci/run runs both)
#   make screenshots   retake the README's pictures in docs/images/ (on purpose only)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
XVFB := xvfb-run -a -s "-screen 0 1600x1000x24"
# where `make demo` saves the window without a display: git-ignored, so a first
# run leaves the checkout (and the README's docs/images/demo.png) as it was
SCREENSHOT ?= build/demo.png
# PySide6 for test-pyside6, in its own folder: the venv itself keeps PyQt6 alone
PYSIDE6 := $(VENV)/pyside6
# Debian packages for a virtual display with software OpenGL (napari's canvas)
# and the xcb libraries Qt loads; scripts/system_deps.sh installs those missing.
SYSTEM_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 \
	libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 \
	libxcb-randr0 libxcb-render-util0 libxcb-image0 libdbus-1-3

.PHONY: demo test test-pyside6 screenshots bench lint system-deps

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "napari-pyramids needs Python 3.11 or newer, $(PYTHON) is" \
			"$$($(PYTHON) -V 2>&1); choose one with: make PYTHON=python3.12 ..." >&2; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[testing]"
	touch $@

system-deps:
	@$(SHELL) scripts/system_deps.sh $(SYSTEM_PACKAGES)

demo: $(VENV)/.installed
ifdef DISPLAY
	$(PY) -m napari_pyramids demo
else
	@$(MAKE) --no-print-directory system-deps
	$(XVFB) $(PY) -m napari_pyramids demo --screenshot $(SCREENSHOT)
endif

test: $(VENV)/.installed system-deps
	$(XVFB) $(PY) -m pytest

$(PYSIDE6)/.installed: $(VENV)/.installed constraints.txt
	$(PY) -m pip install -q -c constraints.txt --target $(PYSIDE6) PySide6-Essentials
	touch $@

# qtpy, pytest-qt and pyqtgraph each pick PySide6; PyQt6 is never imported.
# Deselected: napari 0.9.2 connects a failed worker's `errored` signal (which
# carries the exception) to a two-argument callback, which PySide6, unlike
# PyQt6, calls with the exception too (a TypeError in napari/_qt/qthreading.py).
PYSIDE6_KNOWN_FAILURES := \
	tests/widgets/test_pyramid_widget.py::test_nan_image_reports_error_from_worker
test-pyside6: $(PYSIDE6)/.installed system-deps
	QT_API=pyside6 PYTEST_QT_API=pyside6 PYQTGRAPH_QT_LIB=PySide6 \
		PYTHONPATH=$(PYSIDE6) $(XVFB) $(PY) -m pytest tests/widgets \
		$(addprefix --deselect ,$(PYSIDE6_KNOWN_FAILURES))

screenshots: $(VENV)/.installed system-deps
	for script in scripts/screenshot_*.py; do $(XVFB) $(PY) $$script || exit 1; done

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_pyramid.py
	$(PY) benchmarks/bench_blend.py

lint: $(VENV)/.installed
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m npe2 validate src/napari_pyramids/napari.yaml
