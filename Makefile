# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OUT := outputs/demo
PHOTO = $(shell $(BIN)/python -c "import skimage.data, os; print(os.path.join(skimage.data.data_dir, 'chelsea.png'))")

.PHONY: demo test install kotlin-deps train-cpu

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,ray]"
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

# Two pytest-xdist workers, one per core: most of the suite's time is single-threaded conversion work
# (export, lowering, quantization). tests/conftest.py keeps the files that share an expensive fixture together.
TEST_WORKERS ?= 2
test: install kotlin-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# The CPU recipe that trained the embedded demo model, as the time slices it ran in (2 cores; each line
# resumes $(TRAIN)/state.pt, so rerunning continues an interrupted run). Slice 1: 256 px on easy scenes
# first, under a 2,400-step schedule; slice 2 adds 384 / 512 px and the refinement round; slice 3 lays
# the cosine over 1,400 steps, to its end. Weights: $(TRAIN)/weights.safetensors.
TRAIN := outputs/train-cpu
TRAIN_FLAGS := --device cpu --threads 2 --out $(TRAIN) --eval-every 200 --eval-scenes 8 --save-every 50
RESUME := $(BIN)/tinysam-mobile train $(TRAIN_FLAGS) --resume $(TRAIN)/state.pt
train-cpu: install
	[ -f $(TRAIN)/state.pt ] || $(BIN)/tinysam-mobile train $(TRAIN_FLAGS) --img-size 256 --sizes 256 \
		--steps 2400 --batch-size 4 --prompts-per-image 16 --lr 5e-4 --warmup-steps 100 --focal-weight 5 \
		--easy-steps 250 --easy-fraction 0.25 --refine-rounds 0 --loss-size 256 --stop-at 500
	$(RESUME) --stop-at 500
	$(RESUME) --sizes 256,384,512 --refine-rounds 1 --stop-at 550
	$(RESUME) --steps 1400
