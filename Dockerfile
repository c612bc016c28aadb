# syntax=docker/dockerfile:1
# The outboxpay binary (every subcommand: api, connect, consumers, reconcile,
# platform-mock, migrate, seed, register-connector, replay) in a small
# non-root runtime image. confluent-kafka-go needs cgo: it links the librdkafka
# it bundles statically, so the runtime needs glibc and nothing else.

ARG GO_VERSION=1.26.8

# The console's front-end files (uPlot) from npm, by the committed lockfile; the Go stage
# embeds them (api/operator/web/static/vendor), so the runtime needs no Node.
FROM node:22-bookworm-slim AS web
WORKDIR /web
COPY api/operator/web/package.json api/operator/web/package-lock.json ./
RUN npm ci --no-audit --no-fund && mkdir -p vendor && \
    cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css vendor/

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
COPY --from=web /web/vendor/ api/operator/web/static/vendor/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o /out/outboxpay ./cmd/outboxpay

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/outboxpay /usr/local/bin/outboxpay
COPY connect/outbox-connector.json /etc/outboxpay/outbox-connector.json
USER nonroot:nonroot
ENV LOG_FORMAT=json
EXPOSE 8080 8083 8090 9100
ENTRYPOINT ["/usr/local/bin/outboxpay"]
CMD ["help"]
