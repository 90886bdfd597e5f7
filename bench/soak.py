#!/usr/bin/env python3
"""Soak test (issue 16): a mixed AMQP workload against a running broker for many minutes,
sampling the broker's memory, file descriptors and threads, then checking that nothing the
broker confirmed was lost. Not run in CI.

    WARREN=target/release/warren; DATA=$(mktemp -d)
    $WARREN --amqp-port 5700 --http-port 15700 --prometheus-port 15701 --data-dir $DATA \
        > soak-broker.log 2>&1 &
    python3 bench/soak.py --amqp-port 5700 --http-port 15700 --pid $! --minutes 30 \
        --out soak.json

Needs pika (`pip install pika`) and the broker's /proc entry (same host). The workload, all at
once, each part on its own thread with its own connection (pika connections are not
thread-safe):

- a publisher with confirms, persistent messages, to the durable queue soak.work; the ids
  the broker acked are "confirmed" (nacked or unanswered ones are not);
- a publisher without confirms, transient messages, to the same queue (nothing promised);
- five consumers on soak.work: one that acks; one that nacks ~10% with requeue; one that
  rejects ~10% with requeue; one that closes its connection every ~200 deliveries without
  acking what it holds; a slow one (~50 ms per message);
- a thread declaring a queue, binding it to amq.topic, publishing a few messages to it and
  deleting it, in a loop;
- a thread opening a connection and a channel and closing them, in a loop.

By default 750 confirmed and 750 unconfirmed msgs/s (64 B to 1 KiB), 5 queue cycles/s and 5
connection cycles/s: a soak, not a throughput test (--*-rate flags change them).

Every 10 s it samples the broker's VmRSS, open fds, threads and the management API's object
totals, and rewrites --out (JSON) and --out's .csv sibling (the samples). At the end it stops
the publishers and churners, lets the consumers drain soak.work (at most --drain-timeout s),
stops everything and compares the confirmed ids with the ids the consumers acked.

Exit status: 0 nothing confirmed was lost; 1 confirmed messages were lost (or still queued
after the drain timeout); 2 the broker died.
"""

import argparse
import base64
import csv
import json
import os
import random
import resource
import statistics
import sys
import threading
import time
import urllib.request

import pika
import pika.exceptions

QUEUE = "soak.work"
SAMPLE_EVERY = 10.0
WARMUP_MIN = 2.0
WINDOW_MIN = 5.0
# A resource is called flat when its last-window mean is at most this much above its first.
FLAT_RATIO = 1.10


def params(port, name):
    return pika.ConnectionParameters(
        host="127.0.0.1",
        port=port,
        credentials=pika.PlainCredentials("guest", "guest"),
        client_properties={"connection_name": name},
        blocked_connection_timeout=300,
        connection_attempts=1,
    )


def body_for(prefix, seq):
    # The id comes first, up to ';'; the padding varies the size (64 B–1 KiB).
    pad = random.randint(64, 1024)
    head = b"%s%d;" % (prefix, seq)
    return head + b"x" * max(0, pad - len(head))


def id_of(body):
    return body[: body.index(b";")].decode()


class Worker(threading.Thread):
    """A loop that reconnects after errors; counters are read by the sampler (ints, no lock)."""

    def __init__(self, name, soak):
        super().__init__(name=name, daemon=True)
        self.soak = soak
        self.stats = {"reconnects": 0, "errors": 0}
        self.last_error = None

    def stopped(self):
        return self.soak.stop_all.is_set()

    def run(self):
        while not self.stopped():
            try:
                self.session()
            except Exception as e:  # noqa: BLE001: any client error means reconnect
                if self.stopped():
                    break
                self.stats["errors"] += 1
                self.last_error = "%s: %s" % (type(e).__name__, e)
                time.sleep(0.5)
            if not self.stopped():
                self.stats["reconnects"] += 1

    def session(self):
        raise NotImplementedError


class Producer(Worker):
    """Publishers and churners: they stop with the publishing, before the drain."""

    def stopped(self):
        return self.soak.stop_publishing.is_set() or self.soak.stop_all.is_set()


def pace(start, done, rate):
    """Sleeps until `done` operations at `rate`/s are due since `start`."""
    ahead = start + done / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)


class ConfirmPublisher(Producer):
    def __init__(self, soak, rate):
        super().__init__("pub-confirm", soak)
        self.rate = rate
        self.seq = 0
        self.confirmed = set()
        self.stats.update(published=0, confirmed=0, nacked=0, unanswered=0)

    def session(self):
        conn = pika.BlockingConnection(params(self.soak.port, self.name))
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2)
            start, done = time.monotonic(), 0
            while not self.stopped():
                self.seq += 1
                self.stats["published"] += 1
                try:
                    ch.basic_publish("", QUEUE, body_for(b"c", self.seq), props)
                except pika.exceptions.NackError:
                    self.stats["nacked"] += 1
                except Exception:
                    self.stats["unanswered"] += 1
                    raise
                else:
                    self.confirmed.add(self.seq)
                    self.stats["confirmed"] += 1
                done += 1
                pace(start, done, self.rate)
        finally:
            close_quietly(conn)


class PlainPublisher(Producer):
    def __init__(self, soak, rate):
        super().__init__("pub-plain", soak)
        self.rate = rate
        self.seq = 0
        self.stats.update(published=0)

    def session(self):
        conn = pika.BlockingConnection(params(self.soak.port, self.name))
        try:
            ch = conn.channel()
            start, done = time.monotonic(), 0
            while not self.stopped():
                self.seq += 1
                ch.basic_publish("", QUEUE, body_for(b"u", self.seq))
                self.stats["published"] += 1
                done += 1
                if done % 50 == 0:
                    # Lets pika read what the broker sent (blocked, close) between bursts.
                    conn.process_data_events(0)
                pace(start, done, self.rate)
        finally:
            close_quietly(conn)


class Consumer(Worker):
    """Consumes soak.work; `mode` decides what happens to each delivery."""

    def __init__(self, soak, name, mode, prefetch):
        super().__init__(name, soak)
        self.mode = mode
        self.prefetch = prefetch
        self.acked = set()  # ids as "c17"/"u17" strings
        self.stats.update(delivered=0, redelivered=0, acked=0, nacked=0, rejected=0, dropped=0)
        self.pending = []  # ids delivered, not yet acked (drop mode acks in batches)
        self.pending_tag = None
        self.next_drop = random.randint(150, 250)
        self.since_drop = 0
        self.dropping = False

    def session(self):
        conn = pika.BlockingConnection(params(self.soak.port, self.name))
        self.pending = []
        self.dropping = False
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=self.prefetch)
            ch.basic_consume(QUEUE, lambda c, m, p, b: self.on_message(c, m, b))
            while not self.stopped():
                before = self.stats["delivered"]
                conn.process_data_events(time_limit=0.1)
                if self.pending and not self.dropping and self.stats["delivered"] == before:
                    self.ack_pending(ch)  # idle: nothing more is coming to fill the batch
                if self.dropping:
                    # Closes with up to `prefetch` deliveries unacked: the broker requeues them.
                    self.stats["dropped"] += 1
                    self.pending = []
                    conn.close()
                    return
        finally:
            close_quietly(conn)

    def on_message(self, ch, method, body):
        if self.dropping:
            return  # arrived after the decision to drop: held, never acked
        self.stats["delivered"] += 1
        if method.redelivered:
            self.stats["redelivered"] += 1
        mid = id_of(body)
        tag = method.delivery_tag
        roll = random.random()
        if self.mode == "nack" and roll < 0.1:
            ch.basic_nack(tag, requeue=True)
            self.stats["nacked"] += 1
        elif self.mode == "reject" and roll < 0.1:
            ch.basic_reject(tag, requeue=True)
            self.stats["rejected"] += 1
        elif self.mode == "drop":
            self.since_drop += 1
            if self.since_drop >= self.next_drop:
                self.since_drop = 0
                self.next_drop = random.randint(150, 250)
                self.dropping = True
                return
            # Acks every 10th with multiple=true, so a drop leaves up to 9 of these unacked,
            # besides the rest of the prefetch still on its way to this client.
            self.pending.append(mid)
            self.pending_tag = tag
            if len(self.pending) >= 10:
                self.ack_pending(ch)
        else:
            if self.mode == "slow":
                time.sleep(0.05)
            ch.basic_ack(tag)
            self.acked.add(mid)
            self.stats["acked"] += 1

    def ack_pending(self, ch):
        ch.basic_ack(self.pending_tag, multiple=True)
        self.acked.update(self.pending)
        self.stats["acked"] += len(self.pending)
        self.pending = []


class QueueChurner(Producer):
    def __init__(self, soak, rate):
        super().__init__("queue-churn", soak)
        self.rate = rate
        self.stats.update(cycles=0)

    def session(self):
        conn = pika.BlockingConnection(params(self.soak.port, self.name))
        try:
            ch = conn.channel()
            start, done = time.monotonic(), 0
            while not self.stopped():
                name = "soak.churn.%d" % self.stats["cycles"]
                ch.queue_declare(name, durable=(done % 2 == 0))
                ch.queue_bind(name, "amq.topic", routing_key=name)
                for i in range(5):
                    ch.basic_publish("amq.topic", name, b"churn %d" % i)
                ch.basic_get(name, auto_ack=True)
                ch.queue_delete(name)
                self.stats["cycles"] += 1
                done += 1
                pace(start, done, self.rate)
        finally:
            close_quietly(conn)


class ConnectionChurner(Producer):
    def __init__(self, soak, rate):
        super().__init__("conn-churn", soak)
        self.rate = rate
        self.stats.update(cycles=0)

    def session(self):
        start, done = time.monotonic(), 0
        while not self.stopped():
            conn = pika.BlockingConnection(params(self.soak.port, self.name))
            try:
                conn.channel()
            finally:
                close_quietly(conn)
            self.stats["cycles"] += 1
            done += 1
            pace(start, done, self.rate)


def close_quietly(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:  # noqa: BLE001: the connection may already be gone
        pass


class Soak:
    def __init__(self, args):
        self.args = args
        self.port = args.amqp_port
        self.stop_publishing = threading.Event()
        self.stop_all = threading.Event()
        self.t0 = None
        self.samples = []
        self.broker_died = None
        auth = base64.b64encode(b"guest:guest").decode()
        self.auth_header = {"Authorization": "Basic " + auth}

    # --- broker probes -------------------------------------------------------------------

    def api(self, path):
        url = "http://127.0.0.1:%d/api/%s" % (self.args.http_port, path)
        req = urllib.request.Request(url, headers=self.auth_header)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def broker_alive(self):
        try:
            with open("/proc/%d/status" % self.args.pid) as f:
                return "\nState:\tZ" not in f.read()
        except FileNotFoundError:
            return False

    def proc_sample(self):
        pid = self.args.pid
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return {
            "rss_kb": int(status["VmRSS"].split()[0]),
            "fds": len(os.listdir("/proc/%d/fd" % pid)),
            "threads": len(os.listdir("/proc/%d/task" % pid)),
            "broker_cpu_s": round((int(fields[11]) + int(fields[12])) / ticks, 2),
        }

    def queue_depth(self):
        q = self.api("queues/%2F/" + QUEUE)
        return q.get("messages_ready", 0), q.get("messages_unacknowledged", 0)

    def sample(self, phase):
        s = {"t_s": round(time.monotonic() - self.t0, 1), "phase": phase}
        s.update(self.proc_sample())
        try:
            totals = self.api("overview")["object_totals"]
            for k in ("connections", "channels", "queues", "consumers"):
                s[k] = totals.get(k)
            s["work_ready"], s["work_unacked"] = self.queue_depth()
        except Exception as e:  # noqa: BLE001: a slow API is recorded, not fatal
            s["api_error"] = str(e)
        s["confirmed"] = self.pub_c.stats["confirmed"]
        s["plain_published"] = self.pub_u.stats["published"]
        s["acked"] = sum(c.stats["acked"] for c in self.consumers)
        s["client_cpu_s"] = round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2)
        self.samples.append(s)
        print(
            "[%7.1fs %-5s] rss %.1f MB fds %d thr %d | conn %s ch %s q %s cons %s | "
            "ready %s unacked %s | confirmed %d acked %d"
            % (s["t_s"], phase, s["rss_kb"] / 1024, s["fds"], s["threads"],
               s.get("connections"), s.get("channels"), s.get("queues"), s.get("consumers"),
               s.get("work_ready"), s.get("work_unacked"), s["confirmed"], s["acked"]),
            flush=True,
        )
        self.write(None)
        return s

    # --- the run ---------------------------------------------------------------------------

    def setup(self):
        conn = pika.BlockingConnection(params(self.port, "soak-setup"))
        ch = conn.channel()
        ch.queue_declare(QUEUE, durable=True)
        ch.queue_purge(QUEUE)
        conn.close()

    def make_workers(self):
        a = self.args
        self.pub_c = ConfirmPublisher(self, a.confirm_rate)
        self.pub_u = PlainPublisher(self, a.plain_rate)
        self.consumers = [
            Consumer(self, "cons-ack", "ack", 50),
            Consumer(self, "cons-nack", "nack", 50),
            Consumer(self, "cons-reject", "reject", 50),
            Consumer(self, "cons-drop", "drop", 50),
            Consumer(self, "cons-slow", "slow", 10),
        ]
        self.churners = [QueueChurner(self, a.queue_churn_rate),
                         ConnectionChurner(self, a.conn_churn_rate)]
        self.workers = [self.pub_c, self.pub_u] + self.consumers + self.churners

    def start_workers(self):
        for w in self.consumers + [self.pub_c, self.pub_u] + self.churners:
            w.start()

    def wait_or_die(self, seconds, phase, next_sample):
        """Sleeps `seconds`, sampling every SAMPLE_EVERY; returns False if the broker died."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.broker_alive():
                self.broker_died = round(time.monotonic() - self.t0, 1)
                print("BROKER DIED at t=%.1fs" % self.broker_died, flush=True)
                return False, next_sample
            if time.monotonic() >= next_sample:
                self.sample(phase)
                next_sample += SAMPLE_EVERY
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        return True, next_sample

    def drain(self):
        """Polls soak.work until nothing is ready or unacked 3 times running; False on timeout."""
        deadline = time.monotonic() + self.args.drain_timeout
        zero_runs, next_sample = 0, time.monotonic() + SAMPLE_EVERY
        while time.monotonic() < deadline:
            if not self.broker_alive():
                self.broker_died = round(time.monotonic() - self.t0, 1)
                return False
            try:
                ready, unacked = self.queue_depth()
            except Exception:  # noqa: BLE001
                ready = unacked = -1
            zero_runs = zero_runs + 1 if (ready, unacked) == (0, 0) else 0
            if zero_runs >= 3:
                return True
            if time.monotonic() >= next_sample:
                self.sample("drain")
                next_sample += SAMPLE_EVERY
            time.sleep(1)
        return False

    def run(self):
        self.setup()
        self.make_workers()
        self.t0 = time.monotonic()
        self.sample("idle")
        self.start_workers()
        ok, _ = self.wait_or_die(self.args.minutes * 60, "load", self.t0 + SAMPLE_EVERY)
        self.load_end_s = round(time.monotonic() - self.t0, 1)
        self.stop_publishing.set()
        for w in [self.pub_c, self.pub_u] + self.churners:
            w.join(timeout=30)
        drained = False
        if ok:
            t = time.monotonic()
            drained = self.drain()
            self.drain_s = round(time.monotonic() - t, 1)
            print("drain %s after %.1fs" % ("done" if drained else "TIMED OUT", self.drain_s))
        self.stop_all.set()
        for w in self.workers:
            w.join(timeout=15)
        remaining = None
        if self.broker_alive():
            time.sleep(5)  # closed sockets leave the broker's tables
            self.sample("after")
            remaining = self.queue_depth()
        elif self.broker_died is None:
            self.broker_died = round(time.monotonic() - self.t0, 1)
        return self.summarise(drained, remaining)

    # --- results ---------------------------------------------------------------------------

    def window_means(self, key):
        """Mean of `key` over [warm-up, warm-up + window) and over the last window of load."""
        load = [s for s in self.samples if s["phase"] == "load" and s.get(key) is not None]
        if not load:
            return None
        minutes = self.args.minutes
        warm = min(WARMUP_MIN, minutes * 0.2)
        win = min(WINDOW_MIN, minutes * 0.4)
        first = [s[key] for s in load if warm * 60 <= s["t_s"] < (warm + win) * 60]
        last = [s[key] for s in load if s["t_s"] >= self.load_end_s - win * 60]
        if not first or not last:
            return None
        a, b = statistics.mean(first), statistics.mean(last)
        return {"first_mean": round(a, 1), "last_mean": round(b, 1),
                "ratio": round(b / a, 3) if a else None,
                "flat": bool(a) and b / a <= FLAT_RATIO,
                "first_window_min": [warm, warm + win],
                "last_window_min": [round(self.load_end_s / 60 - win, 2),
                                    round(self.load_end_s / 60, 2)]}

    def summarise(self, drained, remaining):
        acked = set()
        for c in self.consumers:
            acked |= c.acked
        confirmed = {"c%d" % i for i in self.pub_c.confirmed}
        lost = sorted(confirmed - acked, key=lambda s: int(s[1:]))
        plain_acked = sum(1 for i in acked if i.startswith("u"))
        summary = {
            "minutes": self.args.minutes,
            "broker_died_at_s": self.broker_died,
            "drained": drained,
            "drain_s": getattr(self, "drain_s", None),
            "remaining_ready_unacked": remaining,
            "published_confirmed": len(confirmed),
            "published_confirm_attempts": self.pub_c.stats["published"],
            "broker_nacked": self.pub_c.stats["nacked"],
            "unanswered": self.pub_c.stats["unanswered"],
            "published_unconfirmed": self.pub_u.stats["published"],
            "acks_sent": sum(c.stats["acked"] for c in self.consumers),
            "distinct_ids_acked": len(acked),
            "unconfirmed_ids_acked": plain_acked,
            "deliveries": sum(c.stats["delivered"] for c in self.consumers),
            "redelivered": sum(c.stats["redelivered"] for c in self.consumers),
            "nacked_requeue": sum(c.stats["nacked"] for c in self.consumers),
            "rejected_requeue": sum(c.stats["rejected"] for c in self.consumers),
            "connections_dropped_by_consumer": sum(c.stats["dropped"] for c in self.consumers),
            "queue_churn_cycles": self.churners[0].stats["cycles"],
            "connection_churn_cycles": self.churners[1].stats["cycles"],
            "confirmed_lost": len(lost),
            "confirmed_lost_ids_first_50": lost[:50],
            "workers": {w.name: dict(w.stats, last_error=w.last_error) for w in self.workers},
            "flat": {k: self.window_means(k) for k in ("rss_kb", "fds", "threads")},
        }
        self.write(summary)
        return summary

    def write(self, summary):
        out = self.args.out
        doc = {"args": vars(self.args), "samples": self.samples, "summary": summary}
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, out)
        keys = []
        for s in self.samples:
            keys += [k for k in s if k not in keys]
        with open(os.path.splitext(out)[0] + ".csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.samples)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--amqp-port", type=int, default=5672)
    p.add_argument("--http-port", type=int, default=15672)
    p.add_argument("--pid", type=int, required=True, help="the broker's process id")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--out", default="soak.json", help="results JSON (samples also as .csv)")
    p.add_argument("--confirm-rate", type=float, default=750, help="confirmed msgs/s")
    p.add_argument("--plain-rate", type=float, default=750, help="unconfirmed msgs/s")
    p.add_argument("--queue-churn-rate", type=float, default=5, help="queue cycles/s")
    p.add_argument("--conn-churn-rate", type=float, default=5, help="connection cycles/s")
    p.add_argument("--drain-timeout", type=float, default=300, help="seconds")
    args = p.parse_args()

    soak = Soak(args)
    summary = soak.run()
    flat = summary["flat"]
    print("\n== soak summary (%s min) ==" % args.minutes)
    for k in ("published_confirmed", "published_unconfirmed", "broker_nacked", "unanswered",
              "acks_sent", "distinct_ids_acked", "deliveries", "redelivered", "nacked_requeue",
              "rejected_requeue", "connections_dropped_by_consumer", "queue_churn_cycles",
              "connection_churn_cycles", "drained", "drain_s", "remaining_ready_unacked",
              "broker_died_at_s", "confirmed_lost"):
        print("%-32s %s" % (k, summary[k]))
    for k, v in flat.items():
        if v:
            print("%-8s first %s  last %s  ratio %s  %s" % (
                k, v["first_mean"], v["last_mean"], v["ratio"], "flat" if v["flat"] else "GREW"))
    for w in soak.workers:
        if w.stats["errors"]:
            print("%-12s errors %d, last: %s" % (w.name, w.stats["errors"], w.last_error))
    if summary["confirmed_lost"]:
        print("LOST (first 50):", " ".join(summary["confirmed_lost_ids_first_50"]))
    print("results in", args.out)
    if summary["broker_died_at_s"] is not None:
        sys.exit(2)
    sys.exit(1 if summary["confirmed_lost"] else 0)


if __name__ == "__main__":
    main()
