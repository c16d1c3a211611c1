# napari-pyramids: the two commands of the README, and their helpers.
#   make demo   set everything up, then open napari with the plugin and sample data
#               (no display: render the window to docs/images/demo.png instead)
#   make test   set everything up, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
XVFB := xvfb-run -a -s "-screen 0 1600x1000x24"
SCREENSHOT ?= docs/images/demo.png
# Debian packages for a virtual display with software OpenGL (napari's canvas).
SYSTEM_PACKAGES := xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 \
	libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 \
	libxcb-randr0 libxcb-render-util0 libxcb-image0 libdbus-1-3

.PHONY: demo test bench lint system-deps

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[testing]"
	touch $@

system-deps:
	@command -v xvfb-run >/dev/null 2>&1 || { \
		echo "installing a virtual display: $(SYSTEM_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; }

demo: $(VENV)/.installed
ifdef DISPLAY
	$(PY) -m napari_pyramids demo
else
	@$(MAKE) --no-print-directory system-deps
	$(XVFB) $(PY) -m napari_pyramids demo --screenshot $(SCREENSHOT)
endif

test: $(VENV)/.installed system-deps
	$(XVFB) $(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_pyramid.py
	$(PY) benchmarks/bench_blend.py

lint: $(VENV)/.installed
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m npe2 validate src/napari_pyramids/napari.yaml
