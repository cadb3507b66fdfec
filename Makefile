# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OUT := outputs/demo
PHOTO = $(shell $(BIN)/python -c "import skimage.data, os; print(os.path.join(skimage.data.data_dir, 'chelsea.png'))")

.PHONY: demo test install

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/tinysam-mobile segment "$(PHOTO)" --point 230,140 --out $(OUT)/mask.png --overlay $(OUT)/overlay.png
	@echo "demo outputs: $(abspath $(OUT))"

test: install
	$(BIN)/python -m pytest -q
