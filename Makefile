# outboxpay: payments with a transactional outbox streamed by change data capture.
#
#   make run    the whole system on this machine (private Postgres, API)
#   make test   every test, with the race detector
#   make lint   gofmt, go vet, staticcheck

GO          ?= go
BIN         := bin/outboxpay
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
TEST_TIMEOUT ?= 14m

.PHONY: run build test lint migrate bench-cdc clean

run: build
	./$(BIN) dev

build:
	$(GO) build -o $(BIN) ./cmd/outboxpay

test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Apply the migrations to DATABASE_URL.
migrate: build
	./$(BIN) migrate

# Benchmark the CDC engine: a 200,000-event backlog drained by the engine's reader alone
# (decode-only), by pg_recvlogical and by the engine to Kafka (acks=all), then
# commit-to-ack latency at 5,000 events/s for 30 s. Private Postgres and Kafka; a few minutes.
bench-cdc:
	$(GO) run ./cmd/benchcdc -go $(GO)

clean:
	rm -rf bin
