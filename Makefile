# csmlab: the two commands are `make course` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.csmlab-installed
export CSMLAB_DATA ?= $(CURDIR)/data
# Agg keeps the tests' figures off screen. It must not reach the kernels of `make lab` (they would
# draw no matplotlib figure), nor must make's own MAKEFLAGS/MAKELEVEL/MFLAGS (a jobserver that is gone).
# CSMLAB_DATA does reach them on purpose: notebooks and commands share one data root.
export MPLBACKEND ?= Agg
KERNEL_ENV := env -u MPLBACKEND -u MAKEFLAGS -u MAKELEVEL -u MFLAGS

.PHONY: help install course test lab student lint bench clean

help:
	@echo "make course  - set up .venv, run every notebook at smoke scale, write build/course/, print a summary"
	@echo "make test    - set up .venv, run the unit tests and the notebooks (nbval, lax)"
	@echo "make lab     - open JupyterLab on notebooks/"
	@echo "make student - write the student edition (solutions replaced by stubs) to build/student/"
	@echo "make lint    - ruff over csmlab/, tests/, benchmarks/, data_scripts/"
	@echo "make bench   - run the CPU benchmarks in benchmarks/"

# torch is pinned and installed first: on this kind of machine 2.13.0 is a local CPU wheel,
# while an unpinned torch would pull gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q -e ".[bench]" || echo "moderngl (optional) did not install: benchmarks/raster.py will skip llvmpipe"
	touch $(STAMP)

install: $(STAMP)

course: install
	$(BIN)/python -m csmlab.course --scale smoke --out build/course

test: install
	$(BIN)/python -m pytest --nbval-lax --nbval-cell-timeout=900 tests notebooks

lab: install
	$(KERNEL_ENV) $(BIN)/python -m csmlab.lab notebooks

student: install
	$(BIN)/python -m csmlab.editions --out build/student notebooks/[0-9]*.ipynb

lint: install
	$(BIN)/ruff check csmlab tests benchmarks data_scripts

bench: install
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build .pytest_cache
