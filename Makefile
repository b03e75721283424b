# Two commands: `make demo` (set-up + the main job) and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts libosmesa6 libegl1 libegl-mesa0 libgl1-mesa-dri libsndfile1

.PHONY: demo test soak setup system-deps addon bench eval voice-map clean

setup: $(STAMP)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml | system-deps
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24" "setuptools>=77.0.3,<81" wheel
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/python -m flowvq.demo --out out/demo

test: setup
	$(BIN)/python -m pytest -q

soak: setup
	FLOWVQ_SOAK_REPORT=out/soak.txt $(BIN)/python -m pytest -q -s -m soak tests/test_soak.py -p no:cacheprovider

addon: setup
	$(BIN)/python build_addon.py

bench: setup
	$(BIN)/flowvq bench

eval: setup
	$(BIN)/flowvq eval

# the shipped voice map (backend/assets/voice_default.npz, docs/fcg.md "Voice map"): five real speakers,
# none of whom the project measures lip-sync on; needs ../shared/data
VOICE_VIDEOS := $(addprefix ../shared/data/video_with_audio/,hdtf_WDA_AlexandriaOcasioCortez_000.mp4 \
  latentsync_demo1_video_woman_outdoor_10s.mp4 mimictalk_German_20s.mp4 theresa_may_5s.mp4 \
  videoretalking_face4_woman_bluebg_7s.mp4)
voice-map: setup
	$(BIN)/flowvq train voice $(VOICE_VIDEOS) -o backend/assets/voice_default.npz

clean:
	rm -rf $(VENV) dist out build *.egg-info
