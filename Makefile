# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OUT := outputs/demo
PHOTO = $(shell $(BIN)/python -c "import skimage.data, os; print(os.path.join(skimage.data.data_dir, 'chelsea.png'))")

.PHONY: demo test install kotlin-deps

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

# The main job: convert the embedded default model to LiteRT, then segment a real photo with the artifact.
demo: install
	$(BIN)/tinysam-mobile convert --target tflite --precision fp32 --out $(OUT)/tflite-fp32
	$(BIN)/tinysam-mobile segment "$(PHOTO)" --point 230,140 --backend tflite --artifacts $(OUT)/tflite-fp32 \
		--out $(OUT)/mask.png --overlay $(OUT)/overlay.png
	@echo "demo outputs: $(abspath $(OUT)) (LiteRT artifacts + manifest in tflite-fp32/, mask.png, overlay.png)"

# The Android glue tests compile Kotlin with Debian's kotlinc and run JUnit 4: install them once.
kotlin-deps:
	@command -v kotlinc >/dev/null && [ -f /usr/share/java/junit4.jar ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kotlin junit4; }

test: install kotlin-deps
	$(BIN)/python -m pytest -q
