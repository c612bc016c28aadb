#!/bin/bash
# Entrypoint of the Debezium Connect image: turns on Kafka Connect's REST
# Basic authentication (BasicAuthSecurityRestExtension) with credentials from
# the environment, then runs Debezium's own entrypoint. It writes, readable by
# this container's user only:
#   /kafka/config/rest-auth/credentials.properties  CONNECT_REST_USERNAME: CONNECT_REST_PASSWORD
#   /kafka/config/rest-auth/jaas.conf               KafkaConnect { PropertyFileLoginModule file=... }
# makes sure KAFKA_OPTS names the JAAS file, and keeps the credentials out of
# Debezium's entrypoint's log (below). No secret is in the image.
set -euo pipefail

: "${CONNECT_REST_USERNAME:?set CONNECT_REST_USERNAME (the Kafka Connect REST API user)}"
: "${CONNECT_REST_PASSWORD:?set CONNECT_REST_PASSWORD (the Kafka Connect REST API password)}"
case "$CONNECT_REST_USERNAME$CONNECT_REST_PASSWORD" in
  *[!A-Za-z0-9._~+/=-]*)
    echo "CONNECT_REST_USERNAME and CONNECT_REST_PASSWORD may hold only letters, digits and . _ ~ + / = -" >&2
    exit 1 ;;
esac
case "$CONNECT_REST_USERNAME" in *=*) echo "CONNECT_REST_USERNAME may not contain =" >&2; exit 1 ;; esac

dir=/kafka/config/rest-auth
umask 077
mkdir -p "$dir"
printf '%s: %s\n' "$CONNECT_REST_USERNAME" "$CONNECT_REST_PASSWORD" > "$dir/credentials.properties"
cat > "$dir/jaas.conf" <<JAAS
KafkaConnect {
  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required
  file="$dir/credentials.properties";
};
JAAS

case "${KAFKA_OPTS:-}" in
  *java.security.auth.login.config=*) ;;
  *) export KAFKA_OPTS="${KAFKA_OPTS:-} -Djava.security.auth.login.config=$dir/jaas.conf" ;;
esac

# Prometheus's JMX exporter on :9404, its rules outside the /kafka/config
# VOLUME (see the Dockerfile), so a rebuilt image's metrics.yaml applies
# without `up -V`. Debezium's own ENABLE_JMX_EXPORTER would attach a second
# agent on the same port, reading the volume's copy.
unset ENABLE_JMX_EXPORTER
agent=$(echo /kafka/libs/jmx_prometheus_javaagent-*.jar)
export KAFKA_OPTS="$KAFKA_OPTS -javaagent:$agent=9404:/kafka/jmx-exporter/metrics.yaml"

# Debezium's entrypoint turns every CONNECT_* variable into a worker property
# and prints its value unless its name is in SENSITIVE_PROPERTIES. The REST
# credentials are in the files above now: no rest.username/rest.password
# property, nothing in the log. (The health check runs through docker exec,
# which still sees the container's environment.) Its default list, from
# debezium/container-images connect-base/3.0/docker-entrypoint.sh, lacks the
# admin client's JAAS config, which holds the connector's Kafka password.
unset CONNECT_REST_USERNAME CONNECT_REST_PASSWORD
export SENSITIVE_PROPERTIES="${SENSITIVE_PROPERTIES:-CONNECT_SASL_JAAS_CONFIG,CONNECT_CONSUMER_SASL_JAAS_CONFIG,CONNECT_PRODUCER_SASL_JAAS_CONFIG,CONNECT_SSL_KEYSTORE_PASSWORD,CONNECT_PRODUCER_SSL_KEYSTORE_PASSWORD,CONNECT_SSL_TRUSTSTORE_PASSWORD,CONNECT_PRODUCER_SSL_TRUSTSTORE_PASSWORD,CONNECT_SSL_KEY_PASSWORD,CONNECT_PRODUCER_SSL_KEY_PASSWORD,CONNECT_CONSUMER_SSL_TRUSTSTORE_PASSWORD,CONNECT_CONSUMER_SSL_KEYSTORE_PASSWORD,CONNECT_CONSUMER_SSL_KEY_PASSWORD},CONNECT_ADMIN_SASL_JAAS_CONFIG"
exec /docker-entrypoint.sh "$@"
