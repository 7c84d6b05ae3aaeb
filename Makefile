# busagent: `make demo` shows it working on simulators; `make test` runs the whole suite.
# Both install what they need first: Debian packages (apt-get when root) and a local .venv.
# `sudo make install` installs the service on a Raspberry Pi OS / Debian box (systemd/install.sh);
# `make install DESTDIR=/mnt/root` stages the same files into another root.

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# program -> Debian package that provides it
SYSTEM_PROGRAMS := /usr/sbin/mosquitto:mosquitto /usr/sbin/gpsd:gpsd /usr/bin/gpspipe:gpsd-clients \
                   /usr/sbin/ippeveprinter:cups-ipp-utils /usr/bin/dbus-daemon:dbus-daemon \
                   /usr/bin/mosquitto_pub:mosquitto-clients \
                   /usr/bin/chromium:chromium /usr/share/javascript/leaflet/leaflet.js:libjs-leaflet \
                   /usr/bin/pg_ctlcluster:postgresql /usr/bin/cc:gcc /usr/include/stdio.h:libc6-dev

.PHONY: demo demo-devices soak bench test lint typecheck unit system-deps venv clean install

# A whole service day of the Terres des Confluences bus (10 h: La Poste Saint-Aignan, then
# Fajolles with poor 4G, a broker outage and a printer out of paper), 450 times real time.
DEMO_DAY ?= simulators/scenarios/tdc-s13-lundi.toml
DEMO_OUT ?= out/demo

demo: system-deps venv
	$(BIN)/busagent-sim day $(DEMO_DAY) --speedup 450 --out $(DEMO_OUT)

# A tour of the device simulators: read every device, break them one by one, read again.
demo-devices: system-deps venv
	$(BIN)/python -m simulators.demo

test: system-deps venv lint typecheck unit

unit: system-deps venv
	$(BIN)/pytest

# The long reliability runs (kill loops, 24 h outage, 100k fuzz inputs each); prints FIGURES lines.
soak: system-deps venv
	set -o pipefail; BUSAGENT_SOAK=1 $(BIN)/pytest tests/reliability -s -p no:cacheprovider -o timeout=7200 | tee soak.log
	@grep '^FIGURES' soak.log || true

# The benchmarks of docs/performance.md, one after the other (each runs its baseline in the same run);
# fails when any of them misses its goal.
bench: system-deps venv
	@failed=""; for script in bench/[!_]*.py; do \
	  echo "== $$script"; $(BIN)/python $$script || failed="$$failed $$script"; \
	done; \
	if [ -n "$$failed" ]; then echo "goals missed:$$failed"; exit 1; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@missing=""; \
	for entry in $(SYSTEM_PROGRAMS); do \
	  prog=$${entry%%:*}; pkg=$${entry##*:}; \
	  [ -e "$$prog" ] || missing="$$missing $$pkg"; \
	done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$${missing// /}" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "busagent needs these Debian packages: $$missing"; \
	    echo "install them with: sudo apt-get install $$missing"; \
	    exit 1; \
	  fi; \
	fi

install:
	bash systemd/install.sh $(if $(DESTDIR),--root "$(DESTDIR)")

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
