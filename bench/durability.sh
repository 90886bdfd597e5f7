#!/usr/bin/env bash
# Durability benchmark of Warren against RabbitMQ, one run of each figure per broker:
#
#   (a) publish: 2 producers publish 500,000 persistent 1 KiB messages each (1,000,000) to a
#       durable queue with publisher confirms (1000 in flight) and no consumer: msgs/s and
#       broker CPU-s per million;
#   (b) restart: the broker is stopped gracefully with those 1,000,000 messages queued
#       (Warren: SIGTERM; RabbitMQ: rabbitmqctl stop) and started again, once with the OS page
#       cache as the stop left it (warm) and once after `sync; echo 3 > drop_caches` (cold).
#       Measured from starting the broker process until a passive queue.declare returns
#       message_count 1,000,000, plus the broker's RSS at that moment (and for Warren the time
#       its log says "ready to accept AMQP connections");
#   (c) transient backlog: 10,000,000 16-byte non-persistent messages to a non-durable queue
#       with no consumer, then drained (warren-perf backlog): publish and drain rates and the
#       broker's peak RSS, with its RSS sampled every second.
#
#   bench/durability.sh
#   PERSISTENT=50000 BACKLOG=1000000 bench/durability.sh     # a shorter trial
#   OUT=bench/results/durability-DATE PHASES=warren-backlog bench/durability.sh   # one again
#
# Each broker starts from an empty data directory under /tmp: Warren with --data-dir, RabbitMQ
# as its own node (RABBIT_NODE, default warren-durability) with RABBITMQ_MNESIA_BASE and
# RABBITMQ_LOG_BASE there, on RABBIT_PORT. The script stops only the processes it started.
#
# Environment: PERSISTENT messages per producer in (a) (500000), BACKLOG messages in (c)
# (10000000), PHASES (warren-persistent rabbitmq-persistent warren-backlog rabbitmq-backlog;
# persistent is (a) and (b), backlog is (c)), OUT results directory
# (bench/results/durability-DATE; rerunning some phases into an existing OUT replaces just
# their files), RABBIT_PORT (5673),
# RABBIT_NODE (warren-durability), WARREN_PORT (5691), WARREN_HTTP_PORT (15691), WARREN_BIN
# and PERF_BIN (target/release/warren and warren-perf; the script runs copies of them),
# PERF_TIMEOUT seconds per warren-perf run (2400), READY_TIMEOUT seconds for a restart
# (900), QUIET_MAX cores busy (0.3), QUIET_SPAN seconds (3) and QUIET_WAIT seconds (300):
# before each measurement, wait up to QUIET_WAIT for the rest of the machine to use less than
# QUIET_MAX cores for QUIET_SPAN seconds in a row.
#
# Writes to OUT: raw/*.json (warren-perf reports, restart measurements, and per step a .meta
# with the quiet wait and the machine's busy CPU-s), raw/*.rss (RSS timelines of (c)),
# logs/ (both brokers' logs), commands.txt, machine.txt, summary.md and summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PRODUCERS=2
PERSISTENT=${PERSISTENT:-500000}
BACKLOG=${BACKLOG:-10000000}
OUT=${OUT:-bench/results/durability-$(date -u +%Y%m%dT%H%M%SZ)}
RABBIT_PORT=${RABBIT_PORT:-5673}
RABBIT_NODE=${RABBIT_NODE:-warren-durability}
WARREN_PORT=${WARREN_PORT:-5691}
WARREN_PROMETHEUS_PORT=${WARREN_PROMETHEUS_PORT:-15694}
WARREN_HTTP_PORT=${WARREN_HTTP_PORT:-15691}
PERF_TIMEOUT=${PERF_TIMEOUT:-2400}
READY_TIMEOUT=${READY_TIMEOUT:-900}
QUIET_MAX=${QUIET_MAX:-0.3}
QUIET_SPAN=${QUIET_SPAN:-3}
PHASES=${PHASES:-"warren-persistent rabbitmq-persistent warren-backlog rabbitmq-backlog"}
QUIET_WAIT=${QUIET_WAIT:-300}

PERF_BUILT=${PERF_BIN:-target/release/warren-perf}
WARREN_BUILT=${WARREN_BIN:-target/release/warren}
PERF=$PERF_BUILT
WARREN=$WARREN_BUILT
RABBIT_URI="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
WARREN_URI="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2f"
RABBIT_FULLNAME="$RABBIT_NODE@$(hostname -s)"
PERSISTENT_QUEUE=durability-persistent
BACKLOG_QUEUE=durability-backlog
TOTAL=$((PRODUCERS * PERSISTENT))

PUBLISH_FLAGS="throughput -u $PERSISTENT_QUEUE -x $PRODUCERS -y 0 -s 1024 -f -c 1000 -C $PERSISTENT --no-cleanup"
# A minute without deliveries before the drain gives up: RabbitMQ may pause while it pages.
BACKLOG_FLAGS="backlog -u $BACKLOG_QUEUE -x 1 -y 1 -s 16 -C $BACKLOG -c 1000 -q 1000 -k 100 --drain-timeout 60"

# A process that exists and is not a zombie.
alive() { [[ -r /proc/$1/stat ]] && [[ $(cut -d')' -f2 "/proc/$1/stat" | cut -d' ' -f2) != Z ]]; }

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo null; }

now() { date +%s.%N; }

# --- the restart poller ---------------------------------------------------------------------

# Connects until the broker accepts AMQP, then repeats a passive queue.declare until the queue
# reports the expected count; writes when each happened, relative to the time in --t0-file
# (written just before the broker was started), and the broker's RSS then and 5 s later.
# It is started before the broker, so its own start-up is not counted.
POLLER=$(
    cat <<'EOF'
import argparse, calendar, json, os, re, sys, time
import pika

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--queue", required=True)
p.add_argument("--expected", type=int, required=True)
p.add_argument("--t0-file", required=True)
p.add_argument("--armed-file", required=True)
p.add_argument("--pid-file", help="file holding the broker's pid")
p.add_argument("--node", help="RabbitMQ node name in the broker's beam.smp environment")
p.add_argument("--log", help="Warren's log, for its ready line")
p.add_argument("--timeout", type=float, default=900)
a = p.parse_args()

params = pika.ConnectionParameters(
    "127.0.0.1", a.port, "/", pika.PlainCredentials("guest", "guest"),
    connection_attempts=1, socket_timeout=5, stack_timeout=a.timeout, heartbeat=0)
open(a.armed_file, "w").close()
deadline = time.time() + a.timeout
connected_at = counted_at = None
count, refusals, not_found, last_error = None, 0, 0, None

while time.time() < deadline and counted_at is None:
    try:
        conn = pika.BlockingConnection(params)
    except pika.exceptions.AMQPConnectionError as e:
        refusals += 1
        last_error = repr(e)
        time.sleep(0.01)
        continue
    connected_at = connected_at or time.time()
    try:
        while time.time() < deadline:
            ch = conn.channel()
            try:
                while time.time() < deadline:
                    count = ch.queue_declare(a.queue, passive=True).method.message_count
                    if count >= a.expected:
                        counted_at = time.time()
                        break
                    time.sleep(0.01)
                break
            except pika.exceptions.ChannelClosedByBroker as e:
                not_found += 1
                last_error = repr(e)
                time.sleep(0.01)
    except pika.exceptions.AMQPError as e:
        last_error = repr(e)
    try:
        conn.close()
    except Exception:
        pass

def broker_pid():
    if a.pid_file:
        return int(open(a.pid_file).read().strip())
    # The node name is not on beam.smp's command line; it is in its environment.
    wanted = b"RABBITMQ_NODENAME=" + a.node.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            env = open(f"/proc/{entry}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"beam.smp") and wanted in env:
            return int(entry)
    return None

def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, TypeError):
        return None

pid = broker_pid()
rss = rss_kib(pid)
t0 = float(open(a.t0_file).read())
ready_log = recovered_in = None
if a.log:
    for line in open(a.log, errors="replace"):
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if "ready to accept AMQP connections" in line:
            stamp = line.split()[0].rstrip("Z")
            whole, _, frac = stamp.partition(".")
            at = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
            ready_log = at + float("0." + (frac or "0")) - t0
        m = re.search(r"recovered .* messages in (\S+)", line)
        if m:
            recovered_in = m.group(1)
time.sleep(5)
report = {
    "expected": a.expected,
    "message_count": count,
    "ready_s": round(counted_at - t0, 3) if counted_at else None,
    "connected_s": round(connected_at - t0, 3) if connected_at else None,
    "log_ready_s": round(ready_log, 3) if ready_log is not None else None,
    "recovered_in": recovered_in,
    "pid": pid,
    "rss_ready_kib": rss,
    "rss_5s_later_kib": rss_kib(pid),
    "connection_refusals": refusals,
    "queue_not_found": not_found,
    "last_error": last_error,
}
print(json.dumps(report, indent=2))
sys.exit(0 if counted_at else 1)
EOF
)

# --- Warren ---------------------------------------------------------------------------------

WARREN_PID=""
WARREN_DATA=""
WARREN_LOG=""

# warren_start [T0_FILE]: starts Warren on WARREN_DATA, logging to WARREN_LOG.
warren_start() {
    [[ -z ${1:-} ]] || now >"$1"
    "$WARREN" --amqp-port "$WARREN_PORT" --http-port "$WARREN_HTTP_PORT" --prometheus-port "$WARREN_PROMETHEUS_PORT" \
        --data-dir "$WARREN_DATA" --bind 127.0.0.1 >>"$WARREN_LOG" 2>&1 &
    WARREN_PID=$!
    echo "$WARREN_PID" >"$WORK/warren.pid"
}

# Waits for Warren's ready line (its listener is bound before recovery, so a TCP connect
# alone says nothing).
warren_wait_ready() {
    local lines=$1
    for _ in $(seq $((READY_TIMEOUT * 10))); do
        if tail -n +"$((lines + 1))" "$WARREN_LOG" | grep -q 'ready to accept AMQP connections'; then
            return 0
        fi
        alive "$WARREN_PID" || { log "Warren exited at start"; return 1; }
        sleep 0.1
    done
    log "Warren was not ready within $READY_TIMEOUT s"
    return 1
}

# Stops Warren with SIGTERM; STOP_S is the seconds it took to exit.
warren_stop() {
    STOP_S=null
    [[ -n $WARREN_PID ]] || return 0
    local start
    start=$(now)
    kill -TERM "$WARREN_PID" 2>/dev/null || true
    wait "$WARREN_PID" 2>/dev/null || true
    WARREN_PID=""
    STOP_S=$(awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }')
}

# --- RabbitMQ -------------------------------------------------------------------------------

RABBIT_STARTED=0
RABBIT_PID=""
RABBIT_BASE=""
export RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_PORT=$RABBIT_PORT \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1

ctl() { rabbitmqctl -q -n "$RABBIT_FULLNAME" "$@"; }

rabbit_install() {
    if ! command -v rabbitmq-server >/dev/null; then
        log "installing rabbitmq-server"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
        # Debian's package starts its own node on 5672 where systemd runs; it is not used here.
    fi
    if ctl status >/dev/null 2>&1; then
        log "a RabbitMQ node $RABBIT_FULLNAME is already running; set RABBIT_NODE to another name"
        exit 2
    fi
    if ss -ltn | awk '{print $4}' | grep -qE "[:.]$RABBIT_PORT\$"; then
        log "port $RABBIT_PORT is taken; set RABBIT_PORT"
        exit 2
    fi
}

# A new, empty node directory (mnesia, logs) owned by the rabbitmq user.
rabbit_fresh_base() {
    RABBIT_BASE=$(mktemp -d /tmp/warren-durability-rabbitmq.XXXXXX)
    mkdir -p "$RABBIT_BASE/mnesia" "$RABBIT_BASE/log"
    chown -R rabbitmq:rabbitmq "$RABBIT_BASE"
    export RABBITMQ_MNESIA_BASE=$RABBIT_BASE/mnesia RABBITMQ_LOG_BASE=$RABBIT_BASE/log
}

# rabbit_start [T0_FILE]: `rabbitmq-server -detached` returns at once; the node boots after.
rabbit_start() {
    [[ -z ${1:-} ]] || now >"$1"
    rabbitmq-server -detached >>"$WORK/rabbitmq-server.out" 2>&1
    RABBIT_STARTED=1
}

rabbit_wait_ready() {
    local tries=0
    until ctl await_startup --timeout 10 >/dev/null 2>&1; do
        ((++tries < READY_TIMEOUT / 10)) || { log "RabbitMQ did not start"; return 1; }
        sleep 1
    done
    RABBIT_PID=$(ctl eval 'os:getpid().' 2>/dev/null | tr -dc 0-9)
    [[ -n $RABBIT_PID ]]
}

# The node's beam.smp, once it has one (the node name is in its environment, not its
# command line).
rabbit_find_pid() {
    local pid
    for pid in $(pgrep -f beam.smp); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$RABBIT_NODE"; then
            echo "$pid"
            return
        fi
    done
}

# Stops the node with rabbitmqctl stop; STOP_S is the seconds until its VM exited.
rabbit_stop() {
    STOP_S=null
    [[ $RABBIT_STARTED == 1 ]] || return 0
    local start pid
    start=$(now)
    pid=${RABBIT_PID:-$(rabbit_find_pid)}
    ctl stop >/dev/null 2>&1 || true
    if [[ -n $pid ]]; then
        for _ in $(seq 1200); do alive "$pid" || break; sleep 0.1; done
    fi
    RABBIT_STARTED=0
    RABBIT_PID=""
    STOP_S=$(awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }')
}

rabbit_keep_log() {
    mkdir -p "$OUT/logs/$1"
    cp -r "$RABBIT_BASE/log/." "$OUT/logs/$1/" 2>/dev/null || true
}

# --- clean-up -------------------------------------------------------------------------------

BACKGROUND=()
WORK=$(mktemp -d /tmp/warren-durability-work.XXXXXX)

cleanup() {
    local pid
    for pid in "${BACKGROUND[@]}"; do kill "$pid" 2>/dev/null || true; done
    warren_stop
    rabbit_stop
    rm -rf "$WORK" "$WARREN_DATA" "$RABBIT_BASE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a quiet machine ------------------------------------------------------------------------

# Busy CPU-s of the whole machine since boot: user nice system irq softirq steal, USER_HZ 100.
busy_seconds() { awk '/^cpu / {printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / 100}' /proc/stat; }

# Waits until the machine used less than QUIET_MAX cores in each of QUIET_SPAN seconds in a
# row; prints seconds waited.
wait_quiet() {
    local waited=0 quiet=0 before after
    while :; do
        before=$(busy_seconds)
        sleep 1
        after=$(busy_seconds)
        if awk -v b="$before" -v a="$after" -v m="$QUIET_MAX" 'BEGIN { exit !(a - b < m) }'; then
            ((++quiet < QUIET_SPAN)) || break
            continue
        fi
        quiet=0
        ((++waited < QUIET_WAIT)) || { log "machine still busy after ${QUIET_WAIT}s; running"; break; }
        ((waited % 30)) || log "waiting for a quiet machine (${waited}s, $(awk -v b="$before" -v a="$after" 'BEGIN { printf "%.2f", a - b }') cores busy)"
    done
    echo "$waited"
}

# meta NAME WAITED BUSY_BEFORE STARTED EXIT [EXTRA JSON FIELDS]: NAME.meta
meta() {
    local busy
    busy=$(awk -v b="$3" -v a="$(busy_seconds)" 'BEGIN { printf "%.2f", a - b }')
    printf '{"exit": %d, "wall_s": %d, "waited_quiet_s": %d, "machine_busy_s": %s%s}\n' \
        "$5" $((SECONDS - $4)) "$2" "$busy" "${6:-}" >"$WORK/$1.meta"
}

# A step writes its files in WORK and moves them into raw/ once it is complete, so that an
# interrupted rerun into an existing OUT leaves the earlier run's files as they were.
# keep NAME [SUFFIX...] (json err meta)
keep() {
    local name=$1 suffix suffixes=("${@:2}")
    ((${#suffixes[@]})) || suffixes=(json err meta)
    for suffix in "${suffixes[@]}"; do
        if [[ -e $WORK/$name.$suffix ]]; then mv -f "$WORK/$name.$suffix" "$OUT/raw/"; fi
    done
}

# --- measurements ---------------------------------------------------------------------------

# perf NAME URI PID FLAGS: one warren-perf run, its report in raw/NAME.json.
perf() {
    local name=$1 uri=$2 pid=$3 flags=$4 waited started busy status=0
    local cmd="$PERF $flags --uri $uri --broker-pid $pid --json"
    echo "$name: ${cmd/#$PERF/$PERF_BUILT}" >>"$OUT/commands.txt"
    waited=$(wait_quiet)
    log "$name"
    started=$SECONDS
    busy=$(busy_seconds)
    # shellcheck disable=SC2086 # the flags are meant to split
    /usr/bin/time -f '%U %S' -o "$WORK/time" \
        timeout "$PERF_TIMEOUT" $cmd >"$WORK/$name.json" 2>"$WORK/$name.err" || status=$?
    meta "$name" "$waited" "$busy" "$started" "$status" \
        ", \"perf_cpu_s\": $(tail -1 "$WORK/time" | awk '{ printf "%.2f", $1 + $2 }')"
    keep "$name"
    [[ $status == 0 ]] || log "$name: warren-perf exited $status"
    return 0
}

# RSS every second while PID lives, into NAME.rss ("unix-time KiB"); kept once PID is gone.
sample_rss() {
    local name=$1 pid=$2
    (while alive "$pid"; do echo "$(date +%s) $(rss_kib "$pid")"; sleep 1; done) \
        >"$WORK/$name.rss" 2>/dev/null &
    BACKGROUND+=($!)
}

# restart NAME BROKER warm|cold: starts the stopped broker on its data and measures readiness
# into raw/NAME.json; the broker is left running.
restart() {
    local name=$1 broker=$2 cache=$3 waited started busy status=0 extra
    local poll_args=(--queue "$PERSISTENT_QUEUE" --expected "$TOTAL" --timeout "$READY_TIMEOUT"
        --t0-file "$WORK/t0" --armed-file "$WORK/armed")
    if [[ $broker == warren ]]; then
        poll_args+=(--port "$WARREN_PORT" --pid-file "$WORK/warren.pid" --log "$WORK/restart.log")
    else
        poll_args+=(--port "$RABBIT_PORT" --node "$RABBIT_NODE")
    fi
    echo "$name: start $broker ($cache page cache), poll: passive queue.declare $PERSISTENT_QUEUE until message_count $TOTAL" >>"$OUT/commands.txt"
    waited=$(wait_quiet)
    extra=", \"page_cache\": \"$cache\""
    if [[ $cache == cold ]]; then
        sync
        if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
            extra+=", \"cache_dropped\": true"
        else
            log "cannot drop the page cache"
            extra+=", \"cache_dropped\": false"
        fi
    fi
    log "$name"
    started=$SECONDS
    busy=$(busy_seconds)
    rm -f "$WORK/armed" "$WORK/t0"
    : >"$WORK/restart.log"
    python3 -c "$POLLER" "${poll_args[@]}" >"$WORK/$name.json" 2>"$WORK/$name.err" &
    local poller=$!
    BACKGROUND+=("$poller")
    until [[ -e $WORK/armed ]]; do alive "$poller" || break; sleep 0.05; done
    if [[ $broker == warren ]]; then
        WARREN_LOG=$WORK/restart.log
        warren_start "$WORK/t0"
    else
        rabbit_start "$WORK/t0"
    fi
    wait "$poller" || status=$?
    if [[ $broker == warren ]]; then
        cat "$WORK/restart.log" >>"$OUT/logs/warren.log"
        WARREN_LOG=$OUT/logs/warren.log
    else
        RABBIT_PID=$(rabbit_find_pid)
    fi
    meta "$name" "$waited" "$busy" "$started" "$status" "$extra"
    keep "$name"
    [[ $status == 0 ]] || log "$name: the queue did not report $TOTAL messages"
}

# The stop before a restart, timed into raw/NAME.stop.
stop_broker() {
    local name=$1 broker=$2
    if [[ $broker == warren ]]; then warren_stop; else rabbit_stop; fi
    echo "{\"stop_s\": $STOP_S}" >"$OUT/raw/$name.stop"
}

warren_persistent() {
    log "Warren: persistent publish and restarts"
    WARREN_DATA=$(mktemp -d /tmp/warren-durability-data.XXXXXX)
    WARREN_LOG=$OUT/logs/warren.log
    local lines
    lines=$(wc -l <"$WARREN_LOG")
    warren_start
    warren_wait_ready "$lines"
    perf publish_warren "$WARREN_URI" "$WARREN_PID" "$PUBLISH_FLAGS"
    stop_broker stop_before_warm_warren warren
    restart restart_warm_warren warren warm
    stop_broker stop_before_cold_warren warren
    restart restart_cold_warren warren cold
    warren_stop
    du -sk "$WARREN_DATA" | awk '{print "{\"data_dir_kib\": " $1 "}"}' >"$OUT/raw/data_warren.json"
    rm -rf "$WARREN_DATA"
    WARREN_DATA=""
}

rabbit_persistent() {
    log "RabbitMQ: persistent publish and restarts"
    rabbit_fresh_base
    rabbit_start
    rabbit_wait_ready
    perf publish_rabbitmq "$RABBIT_URI" "$RABBIT_PID" "$PUBLISH_FLAGS"
    stop_broker stop_before_warm_rabbitmq rabbitmq
    restart restart_warm_rabbitmq rabbitmq warm
    stop_broker stop_before_cold_rabbitmq rabbitmq
    restart restart_cold_rabbitmq rabbitmq cold
    rabbit_stop
    du -sk "$RABBIT_BASE/mnesia" | awk '{print "{\"data_dir_kib\": " $1 "}"}' >"$OUT/raw/data_rabbitmq.json"
    rabbit_keep_log rabbitmq-persistent
    rm -rf "$RABBIT_BASE"
    RABBIT_BASE=""
}

# After the backlog run: RSS at once and 30 s later, to see whether memory comes back.
rss_after() {
    local name=$1 pid=$2 first
    first=$(rss_kib "$pid")
    sleep 30
    echo "{\"rss_after_run_kib\": ${first:-null}, \"rss_30s_later_kib\": $(rss_kib "$pid")}" \
        >"$OUT/raw/$name.after"
}

warren_backlog() {
    log "Warren: transient backlog"
    WARREN_DATA=$(mktemp -d /tmp/warren-durability-data.XXXXXX)
    WARREN_LOG=$OUT/logs/warren.log
    local lines
    lines=$(wc -l <"$WARREN_LOG")
    warren_start
    warren_wait_ready "$lines"
    sample_rss backlog_warren "$WARREN_PID"
    perf backlog_warren "$WARREN_URI" "$WARREN_PID" "$BACKLOG_FLAGS"
    rss_after backlog_warren "$WARREN_PID"
    warren_stop
    keep backlog_warren rss
    rm -rf "$WARREN_DATA"
    WARREN_DATA=""
}

rabbit_backlog() {
    log "RabbitMQ: transient backlog"
    rabbit_fresh_base
    rabbit_start
    rabbit_wait_ready
    sample_rss backlog_rabbitmq "$RABBIT_PID"
    perf backlog_rabbitmq "$RABBIT_URI" "$RABBIT_PID" "$BACKLOG_FLAGS"
    rss_after backlog_rabbitmq "$RABBIT_PID"
    grep -ih alarm "$RABBIT_BASE"/log/*.log >"$OUT/raw/backlog_rabbitmq.alarms" 2>/dev/null || true
    rabbit_stop
    keep backlog_rabbitmq rss
    rabbit_keep_log rabbitmq-backlog
    rm -rf "$RABBIT_BASE"
    RABBIT_BASE=""
}

# Appended, so a rerun of some phases into the same OUT keeps the first run's record.
machine_info() {
    {
        echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ): $PHASES"
        echo "nproc: $(nproc)"
        echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
        echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
        echo "kernel: $(uname -sr)"
        echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
        echo "filesystem of /tmp: $(df -T /tmp | awk 'NR == 2 {print $2 " on " $1}')"
        echo "warren: $("$WARREN" --version), $WARREN_BUILT built $(date -u -r "$WARREN_BUILT" +%Y-%m-%dT%H:%M:%SZ)"
        echo "warren-perf: $("$PERF" --version), $PERF_BUILT built $(date -u -r "$PERF_BUILT" +%Y-%m-%dT%H:%M:%SZ)"
        echo "checkout: HEAD $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src amqp perf || echo ", with uncommitted changes to $(git diff --name-only HEAD -- src amqp perf | paste -sd' ')")"
        echo "rabbitmq: $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null)"
        echo "erlang: $(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null)"
        echo "pika: $(python3 -c 'import pika; print(pika.__version__)')"
        echo "messages: (a) $PRODUCERS x $PERSISTENT persistent 1 KiB, (c) $BACKLOG transient 16 B"
    } >>"$OUT/machine.txt"
}

# --- the summary ----------------------------------------------------------------------------

SUMMARY=$(
    cat <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
raw = out / "raw"

def load(name, suffix=".json"):
    try:
        return json.loads((raw / (name + suffix)).read_text())
    except (OSError, ValueError):
        return {}

def dig(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d

def mib(kib):
    return None if kib is None else kib / 1024

def rss_peak(name):
    try:
        values = [int(l.split()[1]) for l in (raw / (name + ".rss")).read_text().splitlines()
                  if l.split()[1:] and l.split()[1].isdigit()]
        return max(values) if values else None
    except OSError:
        return None

def other_cpu(name, report):
    """CPU-s the rest of the machine used during a warren-perf run: not the broker, not the tool."""
    meta = load(name, ".meta")
    parts = (meta.get("machine_busy_s"), meta.get("perf_cpu_s"), dig(report, "broker", "cpu_seconds"))
    return None if None in parts else max(0.0, parts[0] - parts[1] - parts[2])

def figures(broker):
    pub, back = load("publish_" + broker), load("backlog_" + broker)
    warm, cold = load("restart_warm_" + broker), load("restart_cold_" + broker)
    after = load("backlog_" + broker, ".after")
    peak = max(x for x in (dig(back, "broker", "rss_peak_kib"), dig(back, "broker", "vm_hwm_kib"),
                           rss_peak("backlog_" + broker), 0) if x is not None) or None
    return {
        "a_confirmed_per_s": dig(pub, "load", "confirmed_per_s"),
        "a_cpu_s_per_million": dig(pub, "broker", "cpu_s_per_million_published"),
        "a_rss_after_mib": mib(dig(pub, "broker", "rss_after_kib")),
        "a_data_dir_mib": mib(load("data_" + broker).get("data_dir_kib")),
        "b_stop_s": load("stop_before_warm_" + broker, ".stop").get("stop_s"),
        "b_warm_log_ready_s": warm.get("log_ready_s"),
        "b_warm_ready_s": warm.get("ready_s"),
        "b_warm_rss_mib": mib(warm.get("rss_ready_kib")),
        "b_cold_log_ready_s": cold.get("log_ready_s"),
        "b_cold_ready_s": cold.get("ready_s"),
        "b_cold_rss_mib": mib(cold.get("rss_ready_kib")),
        "c_published_per_s": dig(back, "backlog", "published_per_s"),
        "c_drained_per_s": dig(back, "backlog", "drained_per_s"),
        "c_rss_before_mib": mib(dig(back, "broker", "rss_before_kib")),
        "c_rss_full_mib": mib(dig(back, "backlog", "broker_rss_full_kib")),
        "c_rss_peak_mib": mib(peak),
        "c_rss_after_mib": mib(after.get("rss_after_run_kib")),
        "c_rss_30s_later_mib": mib(after.get("rss_30s_later_kib")),
        "c_cpu_s_per_million": dig(back, "broker", "cpu_s_per_million_published"),
        "a_other_cpu_s": other_cpu("publish_" + broker, pub),
        "c_other_cpu_s": other_cpu("backlog_" + broker, back),
        "errors": sum(x.get("errors", 0) for x in (pub, back)),
        "lost": dig(back, "backlog", "lost"),
    }

ROWS = [
    ("(a) publish msgs/s (confirmed)", "a_confirmed_per_s", "{:,.0f}"),
    ("(a) broker CPU-s per million", "a_cpu_s_per_million", "{:.2f}"),
    ("(a) broker RSS after publishing, MiB", "a_rss_after_mib", "{:,.1f}"),
    ("(a) data on disk, MiB", "a_data_dir_mib", "{:,.0f}"),
    ("(a) other processes' CPU-s during the run", "a_other_cpu_s", "{:.1f}"),
    ("(b) graceful stop, s", "b_stop_s", "{:.2f}"),
    ("(b) warm: start to ready line in log, s", "b_warm_log_ready_s", "{:.2f}"),
    ("(b) warm: start to queue reporting 1M, s", "b_warm_ready_s", "{:.2f}"),
    ("(b) warm: RSS when ready, MiB", "b_warm_rss_mib", "{:,.1f}"),
    ("(b) cold: start to ready line in log, s", "b_cold_log_ready_s", "{:.2f}"),
    ("(b) cold: start to queue reporting 1M, s", "b_cold_ready_s", "{:.2f}"),
    ("(b) cold: RSS when ready, MiB", "b_cold_rss_mib", "{:,.1f}"),
    ("(c) publish msgs/s (confirmed)", "c_published_per_s", "{:,.0f}"),
    ("(c) drain msgs/s", "c_drained_per_s", "{:,.0f}"),
    ("(c) broker CPU-s per million", "c_cpu_s_per_million", "{:.2f}"),
    ("(c) RSS before, MiB", "c_rss_before_mib", "{:,.1f}"),
    ("(c) RSS with the backlog queued, MiB", "c_rss_full_mib", "{:,.1f}"),
    ("(c) peak RSS, MiB", "c_rss_peak_mib", "{:,.1f}"),
    ("(c) RSS after the drain, MiB", "c_rss_after_mib", "{:,.1f}"),
    ("(c) RSS 30 s after the drain, MiB", "c_rss_30s_later_mib", "{:,.1f}"),
    ("(c) other processes' CPU-s during the run", "c_other_cpu_s", "{:.1f}"),
    ("errors reported by warren-perf", "errors", "{}"),
    ("(c) messages lost", "lost", "{}"),
]

w, r = figures("warren"), figures("rabbitmq")
fmt = lambda f, v: "–" if v is None else f.format(v)
lines = ["| | Warren | RabbitMQ | W/R |", "|---|--:|--:|--:|"]
for title, key, f in ROWS:
    ratio = "–"
    if isinstance(w[key], (int, float)) and isinstance(r[key], (int, float)) and r[key] and key not in ("errors", "lost", "a_other_cpu_s", "c_other_cpu_s"):
        ratio = "{:.2f}".format(w[key] / r[key])
    lines.append(f"| {title} | {fmt(f, w[key])} | {fmt(f, r[key])} | {ratio} |")

def target(name, ok):
    return f"- {name}: " + ("–" if ok is None else ("met" if ok else "not met"))

def ratio(key):
    return w[key] / r[key] if w[key] and r[key] else None

lines.append("")
a = ratio("a_confirmed_per_s")
lines.append(target("(a) Warren publishes at least 2x RabbitMQ", None if a is None else a >= 2))
for cache in ("warm", "cold"):
    v = w[f"b_{cache}_ready_s"]
    lines.append(target(f"(b) Warren {cache} restart with 1M messages under 5 s",
                        None if v is None else v < 5))
c = ratio("c_rss_peak_mib")
lines.append(target("(c) Warren peak RSS at most 1/4 of RabbitMQ's", None if c is None else c <= 0.25))
text = "\n".join(lines) + "\n"
(out / "summary.md").write_text(text)
(out / "summary.json").write_text(json.dumps({"warren": w, "rabbitmq": r}, indent=2) + "\n")
print(text, end="")
EOF
)

main() {
    mkdir -p "$OUT/raw" "$OUT/logs"
    touch "$OUT/logs/warren.log"
    [[ -x $WARREN && -x $PERF ]] || { log "build first: cargo build --release -p warren -p warren-perf"; exit 2; }
    python3 -c 'import pika' 2>/dev/null || { log "the restart poller needs pika: pip install pika"; exit 2; }
    # Copies, so that a rebuild during the run does not change what is measured.
    cp -p "$WARREN" "$WORK/warren"
    cp -p "$PERF" "$WORK/warren-perf"
    WARREN=$WORK/warren PERF=$WORK/warren-perf
    if [[ $PHASES == *rabbitmq* ]]; then rabbit_install; fi
    machine_info
    tail -14 "$OUT/machine.txt" >&2
    local phase
    for phase in $PHASES; do
        case $phase in
            warren-persistent) warren_persistent ;;
            rabbitmq-persistent) rabbit_persistent ;;
            warren-backlog) warren_backlog ;;
            rabbitmq-backlog) rabbit_backlog ;;
            *) log "unknown phase $phase"; exit 2 ;;
        esac
    done
    python3 -c "$SUMMARY" "$OUT"
    log "results in $OUT"
}

main "$@"
