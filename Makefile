# outboxpay: payments with a transactional outbox streamed by change data capture.
#
#   make run    the whole system on this machine (private Postgres, API, operator console)
#   make web    the console's front-end files from npm (uPlot, by package-lock.json) into
#               api/operator/web/static/vendor, embedded in the binary; build, test, lint and
#               run make them first (needs npm once; the binary needs neither Node nor network)
#   make test   every test, with the race detector
#   make lint   gofmt, go vet, staticcheck
#   make screenshots  the console's screenshots in the README (docs/images), by its browser test
#   make bench-e2e  payments end to end at rising rates, against pgbench (~5 min; not in make test)
#   make chaos  kill and restart every part under load, then check the invariants (~12 min)
#   make chaos-replicas  the same with two processes of each consumer group and of the API
#   make up     the production-shaped stack in Docker (Debezium; ENGINE=embedded for the
#               embedded engine); make down, make logs, make connector-status

GO          ?= go
BIN         := bin/outboxpay
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
TEST_TIMEOUT ?= 14m

# The docker-compose stack (needs Docker; not on the development machines).
COMPOSE        ?= docker compose
ENGINE         ?= debezium
COMPOSE_FILES  := -f docker-compose.yml $(if $(filter embedded,$(ENGINE)),-f docker-compose.embedded.yml)
CONNECT_PORT   ?= 8083

.PHONY: run build web test lint screenshots migrate bench-cdc bench-e2e chaos chaos-replicas clean up down logs connector-status

# The console's front-end dependencies: npm ci from the committed lockfile (again only when
# the lockfile changes), then uPlot's built files copied beside the page's own.
WEB_DIR    := api/operator/web
WEB_VENDOR := $(WEB_DIR)/static/vendor/uPlot.iife.min.js $(WEB_DIR)/static/vendor/uPlot.min.css
NPM        ?= npm

run: build
	./$(BIN) dev

build: $(WEB_VENDOR)
	$(GO) build -o $(BIN) ./cmd/outboxpay

web: $(WEB_VENDOR)

$(WEB_DIR)/node_modules/.package-lock.json: $(WEB_DIR)/package-lock.json $(WEB_DIR)/package.json
	$(NPM) ci --prefix $(WEB_DIR) --no-audit --no-fund
	touch $@

$(WEB_DIR)/static/vendor/%: $(WEB_DIR)/node_modules/.package-lock.json
	mkdir -p $(@D)
	cp $(WEB_DIR)/node_modules/uplot/dist/$* $@

test: $(WEB_VENDOR)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

lint: $(STATICCHECK) $(WEB_VENDOR)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# The README's screenshots of the console (docs/images/console-summary.png and
# console-event.png), written by its browser test against `outboxpay dev` (needs chromium).
screenshots: $(WEB_VENDOR)
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs/images $(GO) test -race -count=1 -run '^TestConsoleInBrowser$$' ./cmd/outboxpay/

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Apply the migrations to DATABASE_URL.
migrate: build
	./$(BIN) migrate

# Benchmark the CDC engine: a 200,000-event backlog drained by the engine's reader alone
# (decode-only), by a minimal reader that lets the socket fill (the walsender's ceiling),
# by pg_recvlogical and by the engine to Kafka (acks=all), then
# commit-to-ack latency at 5,000 events/s for 30 s, beside commit-to-decoded at the engine's
# reader alone (what Postgres, the reader and the machine cost before Kafka). Private
# Postgres and Kafka; a few minutes. More with BENCHCDC_FLAGS (go run ./cmd/benchcdc -h):
# BENCHCDC_FLAGS=-console runs `outboxpay console` beside the engine, its page open in headless
# chromium during the drain to Kafka and the steady load, to compare with a run without it.
bench-cdc:
	$(GO) run ./cmd/benchcdc -go $(GO) $(BENCHCDC_FLAGS)

# Benchmark payments end to end: `outboxpay dev` on a private Postgres, seeded orders paid
# through the API with vegeta at rising open-loop rates (API_RATE_LIMIT=0), commit-to-COMPLETE
# from the outbox's timestamps, then pgbench on the payment transaction's SQL. A few minutes.
# Settings: BENCHE2E_RATES (100,200,400,800 payments/s), BENCHE2E_DURATION (20s per rate),
# BENCHE2E_CONSOLE=1 (dev's console open in headless chromium, polling its live summary, through
# every rate, to compare with a run without it); more with BENCHE2E_FLAGS (go run ./cmd/benche2e -h).
bench-e2e: build
	$(GO) run ./cmd/benche2e -bin $(BIN) $(BENCHE2E_FLAGS)

# .env holds the stack's passwords: made once from .env.example with random ones.
.env:
	umask 077; cp .env.example .env.tmp; \
	for v in $$(sed -n 's/^\([A-Z_]*_PASSWORD\)=.*/\1/p' .env.example); do \
	    sed -i "s/^$$v=.*/$$v=$$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')/" .env.tmp || exit 1; done; \
	mv .env.tmp .env
	@echo "wrote .env with fresh passwords (Grafana admin: grep GRAFANA .env; Kafka Connect: grep CONNECT_REST .env; console: grep CONSOLE .env)"

# Build and start the stack, wait until the connector is RUNNING, print the URLs.
up: .env
	$(COMPOSE) $(COMPOSE_FILES) up -d --build
	$(COMPOSE) $(COMPOSE_FILES) run --rm connector-register
	@echo
	@echo "  API            http://localhost:8080   (bearer tokens of the issuer service:"
	@echo "                 curl -H \"Authorization: Bearer \$$($(COMPOSE) exec -T auth-issuer outboxpay token --user 1)\" localhost:8080/products)"
	@echo "  Kafka Connect  http://127.0.0.1:$(CONNECT_PORT)/connectors/outbox/status   ($(ENGINE); make connector-status)"
	@echo "  Console        http://127.0.0.1:8088/console   (CONSOLE_USERNAME/CONSOLE_PASSWORD in .env)"
	@echo "  kafka-ui       http://127.0.0.1:8081"
	@echo "  Grafana        http://127.0.0.1:3000   (user admin, GRAFANA_ADMIN_PASSWORD in .env; dashboards: Outbox pipeline, Consumer lag)"
	@echo "  Prometheus     http://127.0.0.1:9090"
	@echo "  Platform mock  http://127.0.0.1:8090/events   (CONNECT_REST_USERNAME/PASSWORD in .env)"
	@echo "  Kafka          127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
	@echo "  Every port but the API's is bound to 127.0.0.1."

down:
	$(COMPOSE) $(COMPOSE_FILES) down --remove-orphans

logs:
	$(COMPOSE) $(COMPOSE_FILES) logs -f --tail=100

# The connector's status from Kafka Connect's REST API, signed in with
# CONNECT_REST_USERNAME/CONNECT_REST_PASSWORD from the environment, else from .env (the
# compose stack), else as admin from $DATA_DIR/connect-credentials.properties (make run).
connector-status:
	@if [ -z "$$CONNECT_REST_PASSWORD" ]; then \
	  if [ -f .env ]; then set -a; . ./.env; set +a; \
	  elif [ -f "$${DATA_DIR:-.data}/connect-credentials.properties" ]; then \
	    CONNECT_REST_USERNAME=admin; \
	    CONNECT_REST_PASSWORD=$$(sed -n 's/^admin: *//p' "$${DATA_DIR:-.data}/connect-credentials.properties"); \
	  fi; \
	fi; \
	  printf 'user = "%s:%s"\n' "$${CONNECT_REST_USERNAME:-admin}" "$$CONNECT_REST_PASSWORD" | \
	  curl -fsS -K - http://127.0.0.1:$(CONNECT_PORT)/connectors/outbox/status; echo

# The whole system as separate processes under load, every part killed and restarted on a
# seeded schedule, then the invariants checked; prints a report, fails if one broke.
# Settings: CHAOS_DURATION (10m), CHAOS_SEED (1), CHAOS_RATE (5/s), CHAOS_FAULTS
# (kind=count,...), CHAOS_REPLICAS (1), ... (cmd/chaos). About 12 minutes with the defaults.
chaos:
	$(GO) run ./cmd/chaos

# The replicas profile (= CHAOS_REPLICAS=2 make chaos): two processes of each consumer group and
# two API instances behind the same database; also kills a consumer replica while its group
# rebalances, checks that each group's records were shared by both replicas, and reports the
# drain rate of a backlog with 1 and 2 replicas (CHAOS_DRAIN_PAYMENTS, 2000). About 15 minutes.
chaos-replicas:
	CHAOS_REPLICAS=2 $(GO) run ./cmd/chaos

clean:
	rm -rf bin $(WEB_DIR)/static/vendor $(WEB_DIR)/node_modules
