#!/usr/bin/env bash
# Compares two Warren binaries on S1 and S3 (warren-perf --client raw), alternating them in
# each round so that the machine's drift hits both alike. Each run starts its binary on a fresh
# data directory. Prints one line per run and a summary of means and ranges.
#
#   cargo build --release -p warren-perf
#   ROUNDS=3 DUR=10 bench/alternate.sh before /path/to/old/warren after target/release/warren
#
# Swap the two pairs and run again to see whether the order matters.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
PORT=${PORT:-5690}
PERF=${PERF:-target/release/warren-perf}
URI="amqp://guest:guest@127.0.0.1:$PORT/%2f"
NAMES=("$1" "$3")
BINS=("$2" "$4")
OUT=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
    for k in 0 1; do
        for s in S1 S3; do
            dir=$(mktemp -d)
            "${BINS[$k]}" --amqp-port "$PORT" --http-port $((PORT + 10000)) --data-dir "$dir" \
                > "$OUT/broker.log" 2>&1 &
            broker=$!
            for _ in $(seq 1 100); do
                grep -q ready "$OUT/broker.log" && break
                sleep 0.1
            done
            case $s in
                S1) flags="-u bench-s1 -x 1 -y 1 -s 16 -a";;
                S3) flags="-u bench-s3 -x 1 -y 1 -s 16 -c 1000 -q 1000 -k 100 -f";;
            esac
            # shellcheck disable=SC2086
            "$PERF" throughput --client raw --uri "$URI" $flags -z "$DUR" \
                --broker-pid "$broker" --json > "$OUT/run.json"
            python3 - "$OUT/run.json" "${NAMES[$k]}" "$s" "$r" <<'PY' | tee -a "$OUT/lines"
import json, sys
j = json.load(open(sys.argv[1]))
load, broker = j["load"], j["broker"]
rate = load["confirmed_per_s"] if sys.argv[3] == "S3" else load["published_per_s"]
print(f"{sys.argv[2]} {sys.argv[3]} round {sys.argv[4]} msgs/s {rate:.0f} "
      f"cpu-s/M {broker['cpu_s_per_million_published']:.2f}")
PY
            kill "$broker"
            wait "$broker" 2>/dev/null || true
            rm -rf "$dir"
        done
    done
done
python3 - "$OUT/lines" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    p = line.split()
    runs.setdefault((p[0], p[1]), []).append((float(p[5]), float(p[7])))
for (name, s), v in sorted(runs.items()):
    rates, cpu = [x[0] for x in v], [x[1] for x in v]
    print(f"{name} {s}: msgs/s mean {statistics.mean(rates):.0f} "
          f"({min(rates):.0f}-{max(rates):.0f}), CPU-s/M mean {statistics.mean(cpu):.2f} "
          f"({min(cpu):.2f}-{max(cpu):.2f}), n={len(v)}")
PY
rm -rf "$OUT"
