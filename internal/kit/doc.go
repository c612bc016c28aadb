// Package kit is the development and test kit of outboxpay, not the
// product: a private Postgres (pgcluster) and an embedded Kafka
// (kafkacluster) for `outboxpay dev` and the tests, the benchmarks' pgbench
// runner (pgbenchrun), the mock external data platform (platformmock), the
// development token issuer (devtoken), test
// harnesses and fixtures (pgtest, kafkatest, kafkaclustertest, connecttest,
// eventually, logtest, promtest, runtest, contractdoc), a headless chromium for the
// console's browser tests (browser), the console kept open during a
// benchmark (benchconsole) and the chaos harness (chaos).
//
// Imports point one way: the product (api, internal/shop, internal/outbox,
// connect, consumers, migrations, ...) never imports the kit; cmd/ does, to
// run `dev`, the benchmarks and chaos, and the product's tests do.
// TestProductDoesNotImportKit keeps it so.
package kit
