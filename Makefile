# TokenLedger: `make demo` runs the demo server, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SDK    := $(wildcard sdk/python/pyproject.toml)
# Dated OpenRouter prices that cover every seed model; loaded by the demo when ../shared is present.
PRICING_HISTORY ?= ../shared/pricing/openrouter/pricing_history.json
# Port of the demo server: `make demo PORT=8001` (or PORT in the environment).
PORT ?= 8000

.PHONY: demo test lint worker beat db-stop clean

$(STAMP): pyproject.toml $(SDK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]' $(if $(SDK),-e sdk/python)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py sync_model_prices --source genai-prices
	if [ -f "$(PRICING_HISTORY)" ]; then \
	  $(BIN)/python manage.py sync_model_prices --source openrouter-history --file "$(PRICING_HISTORY)"; fi
	$(BIN)/python manage.py seed_demo --base-url http://127.0.0.1:$(PORT)
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT) --noreload

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

worker: $(STAMP)
	$(BIN)/celery -A config worker -Q default,ingest,billing,sync,webhooks -l info

beat: $(STAMP)
	$(BIN)/celery -A config beat -l info

db-stop: $(STAMP)
	$(BIN)/python manage.py embedded_postgres stop

clean:
	rm -rf $(VENV) .data
