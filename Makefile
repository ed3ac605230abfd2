# recaffe: `make demo` trains LeNet on the bundled digits; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install test lint demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# editable in compat mode: the checkout goes on sys.path, so a folder named recaffe in the current
# directory (the checkout itself, seen from its parent) cannot hide the package
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0   # the CPU wheel; a bare "torch" may pull CUDA
	$(BIN)/python -m pip install -q -e ".[test,demo,export]" --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check recaffe caffe tests benchmarks scripts examples
	$(BIN)/mypy   # recaffe/ and caffe/, configured in pyproject.toml

test: install lint
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/recaffe convert_digits examples/digits
	$(BIN)/recaffe train --solver=examples/digits/lenet_solver.prototxt

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) build *.egg-info
