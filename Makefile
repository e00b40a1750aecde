# Two commands do all the set-up: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint bench bench-twilio bench-stores bench-events bench-outbox bench-webchat bench-crm bench-campaign bench-dashboard clean

CHANNELS := omnichannel-twilio omnichannel-facebook omnichannel-email omnichannel-webchat

$(BIN)/.installed: pyproject.toml $(foreach channel,$(CHANNELS),$(channel)/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(foreach channel,$(CHANNELS),-e ./$(channel))
	touch $@

## serve: install (first time) and run the server on the embedded SQLite store
serve: $(BIN)/.installed
	$(BIN)/omnichannel serve

## test: install (first time), lint and type-check, and run the whole test suite
test: $(BIN)/.installed lint
	$(BIN)/pytest

## lint: ruff's lint and format check, then mypy on the packages pyproject.toml lists
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: the inbound webhook benchmark beside a bare Falcon responder
bench: $(BIN)/.installed
	$(BIN)/python -m bench.inbound_webhooks

## bench-twilio: Twilio webhooks beside bare Falcon and Twilio's Flask quickstart
bench-twilio: $(BIN)/.installed
	$(BIN)/python -m bench.twilio_webhooks

## bench-stores: the inbound webhook benchmark on SQLite, then on Firestore (its emulator)
bench-stores: $(BIN)/.installed
	$(BIN)/python -m bench.store_backends

## bench-events: webhook-to-stream latency, one machine (poll bus) and two servers (Pub/Sub)
bench-events: $(BIN)/.installed
	$(BIN)/python -m bench.event_latency

## bench-outbox: sends through the outbox beside a bare loop of the channel's client; pacing
bench-outbox: $(BIN)/.installed
	$(BIN)/python -m bench.outbox

## bench-webchat: 2000 webchat sockets: memory per socket, reply latency; beside bare Falcon
bench-webchat: $(BIN)/.installed
	$(BIN)/python -m bench.webchat_sockets

## bench-crm: CSV import rows/s, segment count and first page at 100,000 contacts, SQLite then Firestore
bench-crm: $(BIN)/.installed
	$(BIN)/python -m bench.crm

## bench-campaign: a campaign to a fake Twilio beside the outbox; its pacing, agents' replies, a 429 window
bench-campaign: $(BIN)/.installed
	$(BIN)/python -m bench.campaign

## bench-dashboard: 1,000,000 messages: rollup cost per event beside a plain write; 30-day dashboard calls beside /health
bench-dashboard: $(BIN)/.installed
	$(BIN)/python -m bench.dashboard

## bench-idle: the CPU an idle server uses, per process, beside the same server with polling as good as off
bench-idle: $(BIN)/.installed
	$(BIN)/python -m bench.idle

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
