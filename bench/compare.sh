#!/usr/bin/env bash
# Side-by-side benchmark of Warren against RabbitMQ with warren-perf: the same flags against
# both brokers, alternating which goes first, RUNS runs per scenario, then a table of medians
# and Warren/RabbitMQ ratios (bench/summarize.py).
#
# RabbitMQ comes from Debian's package and is started on RABBIT_PORT if no node is running;
# it is stopped at the end only if this script started it. Warren is a release build started
# afresh, with an empty data directory, for every run.
#
#   bench/compare.sh                      # everything, 3 runs each
#   RUNS=1 SCENARIOS="S1 S7" bench/compare.sh
#
# Environment: CLIENT (raw: warren-perf's own AMQP client on tokio tasks; lapin: lapin, whose
# thread per connection adds two thread hops per message each way and caps the tool's rate),
# RUNS (3), DURATION seconds per run (10), BACKLOG messages for S8 (1000000),
# SCENARIOS (S1 ... S11), OUT results directory (bench/results/DATE; rerunning some scenarios
# into an existing OUT replaces just their runs), RABBIT_FRESH ("S8 S9": scenarios whose memory
# readings need a RabbitMQ node restarted before each run, since the VM keeps memory an
# earlier run grew, such as S8's backlog, for minutes), RABBIT_PORT (5673),
# WARREN_PORT (5690), WARREN_HTTP_PORT (15690), PERF_TIMEOUT seconds per run (600),
# QUIET_MAX cores busy (0.3), STEAL_MAX (0.05) and QUIET_WAIT seconds (300): before each run,
# wait up to QUIET_WAIT for the rest of the machine to use less than QUIET_MAX cores, and, on a
# virtual machine, for the host to take less than STEAL_MAX of the CPU time a one-second busy
# probe on every core asks for (steal time: a host that takes the cores away for milliseconds
# at a time decides S7's p99 more than either broker does). A run of LATENCY_SCENARIOS ("S7")
# during which the host stole more than STEAL_RUN_MAX CPU-s (0.2) is repeated, up to RETRIES
# attempts (5) in all; the last attempt counts, and raw/*.meta records its steal and attempt.
#
# The machine may be shared (builds, tests): each run's raw/*.meta.json records the machine's
# busy CPU-s during the run and warren-perf's own, so summarize.py can show what else ran.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
BACKLOG=${BACKLOG:-1000000}
SCENARIOS=${SCENARIOS:-"S1 S2 S3 S4 S5 S6 S7 S8 S9 S10 S11"}
OUT=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
RABBIT_PORT=${RABBIT_PORT:-5673}
WARREN_PORT=${WARREN_PORT:-5690}
WARREN_PROMETHEUS_PORT=${WARREN_PROMETHEUS_PORT:-15693}
WARREN_HTTP_PORT=${WARREN_HTTP_PORT:-15690}
PERF_TIMEOUT=${PERF_TIMEOUT:-600}
RABBIT_FRESH=${RABBIT_FRESH:-"S8 S9"}
QUIET_MAX=${QUIET_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-300}
STEAL_MAX=${STEAL_MAX:-0.05}
LATENCY_SCENARIOS=${LATENCY_SCENARIOS:-"S7"}
STEAL_RUN_MAX=${STEAL_RUN_MAX:-0.2}
RETRIES=${RETRIES:-5}

PERF=target/release/warren-perf
WARREN=target/release/warren
RABBIT_URI="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
WARREN_URI="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2f"

# Consumers ack manually, 1000 prefetched, a multiple ack every 100; producers keep 1000
# publishes unconfirmed.
CONFIRMED="-c 1000 -q 1000 -k 100"
CLIENT=${CLIENT:-raw}
C="--client $CLIENT"
declare -A FLAGS=(
    [S1]="throughput $C -u bench-s1 -x 1 -y 1 -s 16 -a -z $DURATION"
    [S2]="throughput $C -u bench-s2 -x 1 -y 1 -s 16 $CONFIRMED -z $DURATION"
    [S3]="throughput $C -u bench-s3 -x 1 -y 1 -s 16 $CONFIRMED -f -z $DURATION"
    [S4]="throughput $C -u bench-s4 -x 1 -y 1 -s 4096 $CONFIRMED -f -z $DURATION"
    [S5]="throughput $C -u bench-s5 --queues 4 -x 4 -y 4 -s 16 $CONFIRMED -z $DURATION"
    [S6]="fanout $C -u bench-s6 --fanout 10 -x 1 -s 16 $CONFIRMED -z $DURATION"
    [S7]="throughput $C -u bench-s7 -x 1 -y 1 -s 16 -r 1000 -c 1 -q 1000 -k 100 -z $DURATION"
    [S8]="backlog $C -u bench-s8 -x 1 -y 1 -s 16 -C $BACKLOG $CONFIRMED"
    [S9]="connections --connections 800 --concurrency 10 -z 5"
    [S10]="throughput $C -u bench-s10 --queues 100 -x 100 -y 100 -s 16 $CONFIRMED -z $DURATION"
    [S11]="churn --concurrency 4 -z 5"
)

# A process that exists and is not a zombie (the VM may be left unreaped where init is not a
# real init).
alive() { [[ -r /proc/$1/stat ]] && [[ $(cut -d')' -f2 "/proc/$1/stat" | cut -d' ' -f2) != Z ]]; }

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- RabbitMQ ------------------------------------------------------------------------------

RABBIT_STARTED=0
rabbit_running() { rabbitmqctl -q status >/dev/null 2>&1; }

start_rabbit() {
    if ! command -v rabbitmq-server >/dev/null; then
        log "installing rabbitmq-server"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
        # Debian's package starts a node on 5672 where systemd runs; we want our own.
        rabbitmqctl stop >/dev/null 2>&1 || true
    fi
    if rabbit_running; then
        log "RabbitMQ already running; using it on port $RABBIT_PORT"
    else
        log "starting RabbitMQ on 127.0.0.1:$RABBIT_PORT"
        RABBITMQ_NODE_PORT=$RABBIT_PORT RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            rabbitmq-server -detached
        RABBIT_STARTED=1
        # -detached returns at once; the node registers with epmd a few seconds later.
        local tries=0
        until rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; do
            ((++tries < 30)) || { log "RabbitMQ did not start"; return 1; }
            sleep 2
        done
    fi
    RABBIT_PID=$(rabbitmqctl -q eval 'os:getpid().' 2>/dev/null | tr -dc 0-9)
    [[ -n $RABBIT_PID ]] || RABBIT_PID=$(pgrep -n -f beam.smp)
    log "RabbitMQ beam.smp pid $RABBIT_PID"
}

stop_rabbit() {
    if [[ $RABBIT_STARTED == 1 ]]; then
        log "stopping RabbitMQ"
        rabbitmqctl -q stop >/dev/null 2>&1 || true
        # rabbitmqctl stop returns before the VM has exited; epmd must outlive it.
        for _ in $(seq 300); do alive "$RABBIT_PID" || break; sleep 0.1; done
        epmd -kill >/dev/null 2>&1 || true
        RABBIT_STARTED=0
    fi
}

restart_rabbit() {
    if [[ $RABBIT_STARTED == 1 ]]; then
        stop_rabbit
        start_rabbit
    else
        log "not restarting a RabbitMQ this script did not start"
    fi
}

# --- Warren --------------------------------------------------------------------------------

WARREN_PID=""
WARREN_DATA=""

start_warren() {
    WARREN_DATA=$(mktemp -d /tmp/warren-bench.XXXXXX)
    "$WARREN" --amqp-port "$WARREN_PORT" --http-port "$WARREN_HTTP_PORT" --prometheus-port "$WARREN_PROMETHEUS_PORT" \
        --data-dir "$WARREN_DATA" --bind 127.0.0.1 >>"$OUT/warren.log" 2>&1 &
    WARREN_PID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$WARREN_PORT") 2>/dev/null; then return 0; fi
        kill -0 "$WARREN_PID" 2>/dev/null || { log "Warren exited at start"; return 1; }
        sleep 0.1
    done
    log "Warren did not listen within 10 s"
    return 1
}

stop_warren() {
    if [[ -n $WARREN_PID ]]; then
        kill -TERM "$WARREN_PID" 2>/dev/null || true
        wait "$WARREN_PID" 2>/dev/null || true
        WARREN_PID=""
    fi
    if [[ -n $WARREN_DATA ]]; then
        rm -rf "$WARREN_DATA"
        WARREN_DATA=""
    fi
}

cleanup() {
    stop_warren
    stop_rabbit
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a quiet machine -----------------------------------------------------------------------

# Busy CPU-s of the whole machine since boot: user nice system irq softirq steal, USER_HZ 100.
busy_seconds() { awk '/^cpu / {printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / 100}' /proc/stat; }

# CPU-s the host has taken from this machine since boot (steal time, USER_HZ 100).
steal_seconds() { awk '/^cpu / {printf "%.2f\n", $9 / 100}' /proc/stat; }

# The share of a one-second busy loop on every core that the host took (0 on bare metal).
steal_share() {
    local before after cores
    cores=$(nproc)
    before=$(awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    for ((i = 0; i < cores; i++)); do timeout 1 sh -c 'while :; do :; done' & done
    wait
    after=$(awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    awk -v b="$before" -v a="$after" 'BEGIN {
        split(b, x, " "); split(a, y, " ");
        printf "%.3f\n", (y[2] > x[2]) ? (y[1] - x[1]) / (y[2] - x[2]) : 0 }'
}

# Waits until the machine used less than QUIET_MAX cores over one second and the host steals
# less than STEAL_MAX; prints seconds waited.
wait_quiet() {
    local waited=0 before after steal
    while :; do
        before=$(busy_seconds)
        sleep 1
        after=$(busy_seconds)
        if awk -v b="$before" -v a="$after" -v m="$QUIET_MAX" 'BEGIN { exit !(a - b < m) }'; then
            steal=$(steal_share)
            if awk -v s="$steal" -v m="$STEAL_MAX" 'BEGIN { exit !(s < m) }'; then
                break
            fi
            ((waited += 1))
        fi
        ((++waited < QUIET_WAIT)) || { log "machine still busy after ${QUIET_WAIT}s; running"; break; }
        ((waited % 30)) || log "waiting for a quiet machine (${waited}s, $(awk -v b="$before" -v a="$after" 'BEGIN { printf "%.2f", a - b }') cores busy, host steal ${steal:-?})"
    done
    echo "$waited"
}

# --- runs ----------------------------------------------------------------------------------

# run SCENARIO BROKER RUN: one warren-perf run, its JSON in raw/SCENARIO_BROKER_RUN.json.
run() {
    local scenario=$1 broker=$2 n=$3 uri pid
    local base="$OUT/raw/${scenario}_${broker}_${n}"
    if [[ $broker == warren ]]; then
        start_warren
        uri=$WARREN_URI pid=$WARREN_PID
    else
        if [[ " $RABBIT_FRESH " == *" $scenario "* ]]; then restart_rabbit; fi
        uri=$RABBIT_URI pid=$RABBIT_PID
    fi
    # shellcheck disable=SC2086 # the flags are meant to split
    local cmd="$PERF ${FLAGS[$scenario]} --uri $uri --broker-pid $pid --json"
    echo "$cmd" >>"$OUT/commands.txt"
    local waited attempt=1 steal
    while :; do
        waited=$(wait_quiet)
        log "$scenario $broker run $n$( ((attempt == 1)) || echo ", attempt $attempt")"
        steal=$(measure "$scenario" "$broker" "$n" "$cmd" "$base" "$waited" "$attempt")
        # Latency runs the host interrupted are repeated: their tail is the host's, not the
        # broker's (see STEAL_RUN_MAX).
        [[ " $LATENCY_SCENARIOS " == *" $scenario "* ]] || break
        awk -v s="$steal" -v m="$STEAL_RUN_MAX" 'BEGIN { exit !(s > m) }' || break
        ((attempt < RETRIES)) || { log "host steal stayed high; keeping the last attempt"; break; }
        log "$scenario $broker run $n: the host stole ${steal} CPU-s; again"
        ((++attempt))
    done
    if [[ $broker == warren ]]; then stop_warren; fi
}

# measure SCENARIO BROKER RUN CMD BASE WAITED ATTEMPT: runs CMD once, writes BASE.json,
# .err, .time and .meta, and prints the CPU-s the host stole meanwhile.
measure() {
    local scenario=$1 broker=$2 n=$3 cmd=$4 base=$5 waited=$6 attempt=$7
    local started=$SECONDS status=0 busy_before busy_after steal_before steal_after steal
    busy_before=$(busy_seconds)
    steal_before=$(steal_seconds)
    # shellcheck disable=SC2086 # the flags are meant to split
    /usr/bin/time -f '%U %S' -o "$base.time" \
        timeout "$PERF_TIMEOUT" $cmd >"$base.json" 2>"$base.err" || status=$?
    busy_after=$(busy_seconds)
    steal_after=$(steal_seconds)
    steal=$(awk -v b="$steal_before" -v a="$steal_after" 'BEGIN { printf "%.2f", a - b }')
    local perf_cpu
    perf_cpu=$(tail -1 "$base.time" | awk '{ printf "%.2f", $1 + $2 }')
    printf '{"exit": %d, "wall_s": %d, "waited_quiet_s": %d, "machine_busy_s": %s, "steal_s": %s, "attempt": %d, "perf_cpu_s": %s}\n' \
        "$status" $((SECONDS - started)) "$waited" \
        "$(awk -v b="$busy_before" -v a="$busy_after" 'BEGIN { printf "%.2f", a - b }')" \
        "$steal" "$attempt" "${perf_cpu:-null}" >"$base.meta"
    echo "$scenario $broker $n exit=$status seconds=$((SECONDS - started)) waited=$waited steal=$steal attempt=$attempt" >>"$OUT/runs.txt"
    [[ $status == 0 ]] || log "$scenario $broker run $n: warren-perf exited $status"
    echo "$steal"
}

# Appended, so a rerun of some scenarios into the same OUT keeps the first invocation's record.
machine_info() {
    {
        echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "nproc: $(nproc)"
        echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
        echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
        echo "kernel: $(uname -sr)"
        echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
        echo "warren: $("$WARREN" --version) ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src amqp perf || echo ', with uncommitted changes'))"
        echo "warren-perf: $("$PERF" --version)"
        echo "rabbitmq: $(rabbitmqctl -q version 2>/dev/null)"
        echo "erlang: $(rabbitmqctl -q eval 'erlang:system_info(otp_release).' 2>/dev/null | tr -d '"') ($(rabbitmqctl -q eval 'erlang:system_info(version).' 2>/dev/null | tr -d '"'))"
        echo "runs: $RUNS, duration: $DURATION s, backlog: $BACKLOG"
        echo "scenarios: $SCENARIOS"
    } >>"$OUT/machine.txt"
}

main() {
    mkdir -p "$OUT/raw"
    for scenario in $SCENARIOS; do rm -f "$OUT/raw/${scenario}_"*; done
    log "building release binaries"
    cargo build --release -q -p warren -p warren-perf
    start_rabbit
    machine_info
    tail -12 "$OUT/machine.txt" >&2
    for scenario in $SCENARIOS; do
        [[ -n ${FLAGS[$scenario]:-} ]] || { log "unknown scenario $scenario"; exit 2; }
        for n in $(seq "$RUNS"); do
            # Alternate which broker goes first so neither always runs on a warmer machine.
            if ((n % 2)); then order="warren rabbitmq"; else order="rabbitmq warren"; fi
            for broker in $order; do run "$scenario" "$broker" "$n"; done
        done
    done
    python3 bench/summarize.py "$OUT" >"$OUT/table.md"
    cat "$OUT/table.md"
    log "results in $OUT"
}

main "$@"
