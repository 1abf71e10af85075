# sysemu: build, test, demo, benchmark.  `make test` works on a fresh Debian 12 with python3.
.PHONY: all venv deps test demo table bench clean

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q -n 2 --timeout=300
# Debian packages the tests need. `make deps` installs the missing ones when run as root.
APT_PACKAGES ?= gcc gcc-multilib libc6-dev libseccomp2 curl strace python3 python3-venv make nginx-light redis-server redis-tools wrk iproute2 tshark binutils dnsutils socat iperf3 memcached iputils-ping nodejs

all: test

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py | deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' \
	      || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	    echo "deps: missing $$missing and no apt-get; install them by hand" >&2; exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "deps: missing $$missing; run 'make deps' as root" >&2; exit 0; fi; \
	echo "deps: installing$$(echo ' '$$missing)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing

test: venv deps
	@$(VENV)/bin/pytest $(PYTEST_ARGS) || { rc=$$?; echo "pytest exited with status $$rc"; exit $$rc; }

demo: venv deps
	bash demo/run.sh

table: venv
	$(PY) -m sysemu.arch.x86.syscalltbl

bench: venv deps
	$(PY) bench/table.py

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .hypothesis $(VENV)/.installed
