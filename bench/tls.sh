#!/usr/bin/env bash
# S1 and S3 over TLS beside plain AMQP, with warren-perf's lapin client (the raw client speaks
# plain amqp:// only), against Warren and, when RABBIT_PORT and RABBIT_TLS_PORT are set, a
# RabbitMQ on this machine with TLS configured on the same certificate.
#
#   cargo build --release -p warren -p warren-perf
#   CERTS=/tmp/tlsb bench/tls.sh target/release/warren
#
# CERTS holds ca.pem, server.pem and server.key (a certificate for localhost/127.0.0.1).
set -euo pipefail
WARREN=$1
CERTS=${CERTS:?a directory with ca.pem, server.pem, server.key}
ROUNDS=${ROUNDS:-2}
DUR=${DUR:-10}
PORT=${PORT:-5690}
TLS_PORT=${TLS_PORT:-5691}
PERF=${PERF:-target/release/warren-perf}
OUT=$(mktemp -d)

run() { # name uri pid scenario
    case $4 in
        S1) flags="-u bench-s1 -x 1 -y 1 -s 16 -a";;
        S3) flags="-u bench-s3 -x 1 -y 1 -s 16 -c 1000 -q 1000 -k 100 -f";;
    esac
    # shellcheck disable=SC2086
    "$PERF" throughput --client lapin --tls-ca "$CERTS/ca.pem" --uri "$2" $flags -z "$DUR" \
        --broker-pid "$3" --json > "$OUT/run.json"
    python3 - "$OUT/run.json" "$1" "$4" <<'PY' | tee -a "$OUT/lines"
import json, sys
j = json.load(open(sys.argv[1]))
load, broker = j["load"], j["broker"]
rate = load["confirmed_per_s"] if sys.argv[3] == "S3" else load["published_per_s"]
print(f"{sys.argv[2]} {sys.argv[3]} msgs/s {rate:.0f} "
      f"cpu-s/M {broker['cpu_s_per_million_published']:.2f}")
PY
}

for r in $(seq 1 "$ROUNDS"); do
    for s in S1 S3; do
        dir=$(mktemp -d)
        "$WARREN" --amqp-port "$PORT" --http-port $((PORT + 10000)) --data-dir "$dir" \
            --amqps-port "$TLS_PORT" --https-port $((TLS_PORT + 10000)) \
            --tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server.key" > "$OUT/broker.log" 2>&1 &
        broker=$!
        for _ in $(seq 1 100); do
            grep -q ready "$OUT/broker.log" && break
            sleep 0.1
        done
        run warren-amqp "amqp://guest:guest@127.0.0.1:$PORT/%2f" "$broker" "$s"
        run warren-amqps "amqps://guest:guest@localhost:$TLS_PORT/%2f" "$broker" "$s"
        kill "$broker"
        wait "$broker" 2>/dev/null || true
        rm -rf "$dir"
        if [ -n "${RABBIT_PORT:-}" ]; then
            rabbit=$(pgrep -f 'beam.smp' | head -1)
            run rabbitmq-amqp "amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f" "$rabbit" "$s"
            run rabbitmq-amqps "amqps://guest:guest@localhost:$RABBIT_TLS_PORT/%2f" "$rabbit" "$s"
        fi
    done
done
python3 - "$OUT/lines" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    p = line.split()
    runs.setdefault((p[0], p[1]), []).append((float(p[3]), float(p[5])))
for (name, s), v in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    rates, cpu = [x[0] for x in v], [x[1] for x in v]
    print(f"{s} {name}: msgs/s mean {statistics.mean(rates):.0f} "
          f"({min(rates):.0f}-{max(rates):.0f}), CPU-s/M mean {statistics.mean(cpu):.2f}, n={len(v)}")
PY
