# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean chromium espeak-ng

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/coso serve --demo

test: $(STAMP) chromium espeak-ng
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 3 --dist worksteal

# Debian's chromium for the browser tests (tests/browser/), installed when missing and this
# runs as root with apt-get; otherwise those tests fail saying what to install.
APT_LOG := $(or $(TMPDIR),/tmp)/coso-chromium-apt.log
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { echo "installing Debian's chromium for the browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq chromium; } >$(APT_LOG) 2>&1; } || \
	  { cat $(APT_LOG) >&2; echo "chromium could not be installed: the browser tests will fail" >&2; }

# Debian's espeak-ng for speech of text-only content (content/speech.py, its tests), installed
# the same way; otherwise speaking is refused saying what to install.
ESPEAK_LOG := $(or $(TMPDIR),/tmp)/coso-espeak-ng-apt.log
espeak-ng:
	@command -v espeak-ng >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  { echo "installing Debian's espeak-ng for speech"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq espeak-ng; } >$(ESPEAK_LOG) 2>&1; } || \
	  { cat $(ESPEAK_LOG) >&2; echo "espeak-ng could not be installed: the speech tests will fail" >&2; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench.fanout --endpoints 100000

clean:
	rm -rf $(VENV) coso-data *.egg-info
