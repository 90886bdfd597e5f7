#!/usr/bin/env bash
# The Warren image end to end: builds it (docker/build.sh), starts a container with
# RabbitMQ's environment variables, waits for its health check, publishes persistent messages
# over AMQP from the host and uses the management API with the configured user, restarts the
# container on the same volume and gets the messages back, and stops it with `docker stop`,
# which must end in exit code 0 within the 10 s grace period. Starts dockerd (installing
# docker.io) when Docker is missing. Pipes end in `grep > /dev/null`, not `grep -q`: grep -q
# stops reading at its match, and with pipefail the writer's SIGPIPE would fail the script.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info > /dev/null 2>&1; then
    if ! command -v dockerd > /dev/null; then
        apt-get update -qq && apt-get install -y -qq docker.io > /dev/null
    fi
    (dockerd > /tmp/warren-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do docker info > /dev/null 2>&1 && break; sleep 1; done
fi

TAG=warren:test
NAME=warren-test-$$
VOLUME=warren-test-data-$$
cleanup() {
    docker rm -f "$NAME" > /dev/null 2>&1 || true
    docker volume rm "$VOLUME" > /dev/null 2>&1 || true
}
trap cleanup EXIT

docker/build.sh "$TAG"
SIZE=$(docker image inspect --format '{{.Size}}' "$TAG")
[ "$SIZE" -lt $((30 * 1024 * 1024)) ] || { echo "the image is over 30 MiB" >&2; exit 1; }
cargo build --quiet --example durable_roundtrip
CHECK=target/debug/examples/durable_roundtrip

# start [docker run options...]: a container on the volume, waited for until healthy.
start() {
    docker run -d --name "$NAME" -v "$VOLUME:/var/lib/warren" "$@" \
        -p 127.0.0.1::5672 -p 127.0.0.1::15672 -p 127.0.0.1::15692 "$TAG" > /dev/null
    for _ in $(seq 1 60); do
        status=$(docker inspect --format '{{.State.Health.Status}}' "$NAME")
        [ "$status" = healthy ] && break
        [ "$(docker inspect --format '{{.State.Running}}' "$NAME")" = true ] || {
            docker logs "$NAME"; echo "the container exited" >&2; exit 1; }
        sleep 1
    done
    [ "$status" = healthy ] || { docker logs "$NAME"; echo "not healthy: $status" >&2; exit 1; }
    AMQP=$(docker port "$NAME" 5672/tcp | sed -n 1p)
    HTTP=$(docker port "$NAME" 15672/tcp | sed -n 1p)
    METRICS=$(docker port "$NAME" 15692/tcp | sed -n 1p)
    echo "healthy: AMQP on $AMQP, API on $HTTP"
}

stop_within_grace() {
    local began=$SECONDS
    docker stop "$NAME" > /dev/null
    local took=$((SECONDS - began))
    local code
    code=$(docker inspect --format '{{.State.ExitCode}}' "$NAME")
    [ "$code" = 0 ] || { docker logs "$NAME"; echo "exit code $code" >&2; exit 1; }
    [ "$took" -lt 10 ] || { echo "docker stop took ${took}s" >&2; exit 1; }
    echo "stopped cleanly in ${took}s (exit code 0)"
    docker rm "$NAME" > /dev/null
}

CREDENTIALS=(-e RABBITMQ_DEFAULT_USER=admin -e RABBITMQ_DEFAULT_PASS=s3cret)
start "${CREDENTIALS[@]}"
AMQP_ADDR="amqp://admin:s3cret@$AMQP/%2f" "$CHECK" publish 10
curl -sf -u admin:s3cret "http://$HTTP/api/whoami" | grep '"administrator"' > /dev/null
curl -sf -u admin:s3cret "http://$HTTP/api/queues/%2F/durable-check" | grep '"messages":10' > /dev/null
curl -sf "http://$METRICS/metrics" | grep '^rabbitmq_queue_messages_ready 10' > /dev/null
# The image's guest exists only when no credentials are given: here it does not.
[ "$(curl -s -o /dev/null -w '%{http_code}' -u guest:guest "http://$HTTP/api/whoami")" = 401 ]
docker exec "$NAME" /usr/local/bin/warrenctl -u admin --password s3cret -q list_queues \
    | grep "^durable-check	10$" > /dev/null
stop_within_grace

start "${CREDENTIALS[@]}"
AMQP_ADDR="amqp://admin:s3cret@$AMQP/%2f" "$CHECK" get 10
stop_within_grace

# Without credentials, guest/guest works from outside the container, with a warning; a
# mounted configuration file and a definitions file are read.
docker volume rm "$VOLUME" > /dev/null
MOUNTS=$(mktemp -d)
echo 'default_vhost = "from-config"' > "$MOUNTS/warren.toml"
echo '{"queues": [{"name": "from-definitions", "vhost": "from-config", "durable": true}]}' \
    > "$MOUNTS/definitions.json"
chmod 755 "$MOUNTS" && chmod 644 "$MOUNTS"/*
start -v "$MOUNTS/warren.toml:/etc/warren/warren.toml:ro" \
    -v "$MOUNTS/definitions.json:/etc/warren/definitions.json:ro" \
    -e WARREN_LOAD_DEFINITIONS=/etc/warren/definitions.json
[ "$(curl -s -o /dev/null -w '%{http_code}' -u guest:guest "http://$HTTP/api/whoami")" = 200 ]
docker logs "$NAME" 2>&1 | grep "guest (password guest) may connect from any host" > /dev/null
curl -sf -u guest:guest "http://$HTTP/api/queues/from-config/from-definitions" > /dev/null
stop_within_grace
rm -rf "$MOUNTS"
echo "docker/test.sh: the image works"
