# The README's two commands are `make demo` and `make test`; both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-all bench bench-gpu clean

# musicnn: the pretrained musicnn checkpoints (approaches musicnn, musicnn_finetune); --no-deps:
# its metadata pins numpy<1.17, and only its checkpoint files are read (models/musicnn_checkpoint.py)
$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps musicnn==0.1.0
	@touch $(STAMP)

venv: $(STAMP)

# Main job on the embedded synthetic data: build the dataset, train, evaluate, print results.
DEMO_FLAGS ?= --dataset-config synthetic --transform mfcc --model cnn1d --epochs 15 --overwrite
demo: $(STAMP)
	$(VENV)/bin/tfds build gtzan_tfds --config synthetic
	$(PY) -m pipeline.train $(DEMO_FLAGS) --run-dir runs/demo

# The default (fast) suite; `make test-all` adds the slow tests.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pipeline.bench --quick --json bench.json

# On a machine with a GPU (and a CUDA build of TensorFlow): every transform and placement on
# the GPU, and a check that the transform ops run there; writes bench_gpu.json (< 4 minutes).
bench-gpu: $(STAMP)
	$(PY) -m pipeline.bench --gpu --json bench_gpu.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
