# The README's two commands are `make demo` and `make test`; both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv venv-tfio lock demo test test-all bench bench-gpu clean

# The exact stack comes from requirements.lock (every package pinned with its hashes, so both
# README commands install the same versions on every machine); the project itself is then
# installed without dependencies. `make lock` refreshes the lock from setup.cfg's ranges.
# musicnn: the pretrained musicnn checkpoints (approaches musicnn, musicnn_finetune); --no-deps:
# its metadata pins numpy<1.17, and only its checkpoint files are read (models/musicnn_checkpoint.py)
$(STAMP): setup.cfg pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip install -q --no-deps musicnn==0.1.0
	@touch $(STAMP)

# Re-resolve the newest versions setup.cfg allows (Python 3.11-3.13, with hashes) into the lock.
lock:
	$(PYTHON) -m pip install -q uv
	$(PYTHON) -m uv pip compile setup.cfg --extra test --generate-hashes --universal \
	    --python-version 3.11 --custom-compile-command "make lock" -q -o requirements.lock

# tensorflow-io loads only on TensorFlow 2.17.x: a separate environment for the bench's
# resampler comparison (python -m pipeline.bench resample --tfio), never the default install.
TFIO_VENV ?= .venv-tfio
venv-tfio:
	@test -x $(TFIO_VENV)/bin/python || $(PYTHON) -m venv $(TFIO_VENV)
	$(TFIO_VENV)/bin/python -m pip install -q -c constraints-tfio.txt tensorflow tensorflow-io \
	    tensorflow-datasets tensorflow-metadata librosa soundfile scipy tqdm absl-py
	$(TFIO_VENV)/bin/python -m pip install -q --no-deps -e .
	$(TFIO_VENV)/bin/python -m pipeline.bench resample --tfio

venv: $(STAMP)

# Main job on the embedded synthetic data: build the dataset, train, evaluate, print results.
DEMO_FLAGS ?= --dataset-config synthetic --transform mfcc --model cnn1d --epochs 15 --overwrite
demo: $(STAMP)
	$(VENV)/bin/tfds build gtzan_tfds --imports gtzan_tfds --config synthetic
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
