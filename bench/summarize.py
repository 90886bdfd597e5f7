#!/usr/bin/env python3
"""Turns bench/compare.sh's raw warren-perf JSON into Markdown tables of medians and
Warren/RabbitMQ ratios.

    python3 bench/summarize.py bench/results/DATE > table.md

Reads DIR/raw/SCENARIO_BROKER_RUN.json (BROKER is warren or rabbitmq). A run whose JSON is
missing or unreadable counts as failed and is left out of the medians.
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

BROKERS = ("warren", "rabbitmq")

TITLES = {
    "S1": "S1 1→1 transient, auto-ack",
    "S2": "S2 1→1 confirms 1000, manual ack (prefetch 1000, multi-ack 100)",
    "S3": "S3 S2 persistent, durable queue",
    "S4": "S4 S3 with 4 KiB messages",
    "S5": "S5 4 producers → 4 queues → 4 consumers (S2 flags)",
    "S6": "S6 fanout to 10 queues, 10 consumers (S2 flags)",
    "S7": "S7 1000 msg/s, 1 confirm in flight",
    "S8": "S8 backlog: publish with no consumer, then drain",
    "S9": "S9 800 idle connections (10 openers)",
    "S10": "S10 100 producers → 100 queues → 100 consumers (S2 flags)",
    "S11": "S11 churn (4 workers)",
}


def load(directory):
    """{scenario: {broker: [report, ...]}} and {scenario: {broker: failed runs}}.

    Each report gets the run's compare.sh record (raw/*.meta) under "_meta"."""
    runs = defaultdict(lambda: defaultdict(list))
    failed = defaultdict(lambda: defaultdict(int))
    paths = sorted((directory / "raw").glob("*.json"), key=lambda p: int(p.stem.split("_")[2]))
    for path in paths:
        scenario, broker, _ = path.stem.split("_")
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            failed[scenario][broker] += 1
            continue
        try:
            report["_meta"] = json.loads(path.with_suffix(".meta").read_text())
        except (OSError, ValueError):
            report["_meta"] = {}
        runs[scenario][broker].append(report)
    return runs, failed


def other_cpu(report):
    """CPU-s the rest of the machine used during the run: everything but broker and tool."""
    meta = report.get("_meta", {})
    busy, perf = meta.get("machine_busy_s"), meta.get("perf_cpu_s")
    broker = dig(report, "broker", "cpu_seconds")
    if None in (busy, perf, broker):
        return None
    # machine_busy_s counts steal time too: it is shown on its own line.
    return max(busy - (meta.get("steal_s") or 0.0) - perf - broker, 0.0)


def steal(report):
    """CPU-s the host took from this machine during the run (a virtual machine's steal time)."""
    return report.get("_meta", {}).get("steal_s")


def perf_cpu(report):
    return report.get("_meta", {}).get("perf_cpu_s")


def wall(report):
    return report.get("_meta", {}).get("wall_s")


def dig(report, *keys):
    for key in keys:
        if report is None:
            return None
        report = report.get(key)
    return report


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cpu_per_million(report):
    """Broker CPU-s per million deliveries (fanout) or publishes (everything else)."""
    broker = report.get("broker") or {}
    delivered = broker.get("cpu_s_per_million_delivered")
    return delivered if delivered is not None else broker.get("cpu_s_per_million_published")


def mib(kib):
    return None if kib is None else kib / 1024


def ms(us):
    return None if us is None else us / 1000


# Each metric: (label, extractor, format, which way is better for Warren/RabbitMQ).
LOAD_METRICS = [
    ("delivered msgs/s", lambda r: dig(r, "load", "consumed_per_s"), "{:,.0f}", "higher"),
    ("published msgs/s", lambda r: dig(r, "load", "published_per_s"), "{:,.0f}", "higher"),
    ("broker CPU-s per million", cpu_per_million, "{:.2f}", "lower"),
    ("latency p50 ms", lambda r: ms(dig(r, "load", "latency", "p50_us")), "{:.2f}", "lower"),
    ("latency p99 ms", lambda r: ms(dig(r, "load", "latency", "p99_us")), "{:.2f}", "lower"),
    ("broker peak RSS MiB", lambda r: mib(dig(r, "broker", "rss_peak_kib")), "{:.1f}", "lower"),
]
BACKLOG_METRICS = [
    ("fill msgs/s", lambda r: dig(r, "backlog", "published_per_s"), "{:,.0f}", "higher"),
    ("drain msgs/s", lambda r: dig(r, "backlog", "drained_per_s"), "{:,.0f}", "higher"),
    ("broker CPU-s per million", cpu_per_million, "{:.2f}", "lower"),
    ("broker RSS with backlog MiB", lambda r: mib(dig(r, "backlog", "broker_rss_full_kib")),
     "{:.1f}", "lower"),
    ("broker peak RSS MiB", lambda r: mib(dig(r, "broker", "rss_peak_kib")), "{:.1f}", "lower"),
    ("broker RSS before MiB", lambda r: mib(dig(r, "broker", "rss_before_kib")), "{:.1f}",
     "lower"),
]
CONNECTION_METRICS = [
    ("seconds to open all", lambda r: dig(r, "connections", "open_seconds"), "{:.2f}", "lower"),
    ("opened per s", lambda r: dig(r, "connections", "opened_per_s"), "{:,.0f}", "higher"),
    ("open p99 ms", lambda r: ms(dig(r, "connections", "open_latency", "p99_us")), "{:.2f}",
     "lower"),
    ("broker RSS KiB per connection",
     lambda r: dig(r, "connections", "broker_rss_per_connection_kib"), "{:.1f}", "lower"),
    ("broker RSS held MiB", lambda r: mib(dig(r, "connections", "broker_rss_held_kib")),
     "{:.1f}", "lower"),
    ("failed connections", lambda r: dig(r, "connections", "failed"), "{:.0f}", "lower"),
]
CHURN_METRICS = [
    ("queue declare+delete per s", lambda r: dig(r, "churn", "queues", "per_s"), "{:,.0f}",
     "higher"),
    ("connection open+close per s", lambda r: dig(r, "churn", "connections", "per_s"),
     "{:,.0f}", "higher"),
    ("broker peak RSS MiB", lambda r: mib(dig(r, "broker", "rss_peak_kib")), "{:.1f}", "lower"),
]


def metrics_for(reports):
    mode = reports[0].get("mode")
    return {
        "backlog": BACKLOG_METRICS,
        "connections": CONNECTION_METRICS,
        "churn": CHURN_METRICS,
    }.get(mode, LOAD_METRICS)


def fmt(value, pattern):
    return "–" if value is None else pattern.format(value)


def ratio(warren, rabbit):
    if warren is None or rabbit is None or rabbit == 0:
        return None
    return warren / rabbit


def headline(runs):
    """One row per message-moving scenario: medians and the three ratios the issue asks for."""
    lines = [
        "| scenario | Warren msgs/s | RabbitMQ msgs/s | throughput W/R "
        "| Warren CPU-s/M | RabbitMQ CPU-s/M | CPU W/R "
        "| Warren p50 / p99 ms | RabbitMQ p50 / p99 ms | p50 W/R | p99 W/R |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for scenario in sorted(runs, key=lambda s: int(s[1:])):
        sides = runs[scenario]
        if not all(sides.get(b) for b in BROKERS):
            continue
        mode = sides["warren"][0].get("mode")
        if mode == "backlog":
            rate = lambda r: dig(r, "backlog", "drained_per_s")  # noqa: E731
            p50 = lambda r: None  # noqa: E731
            p99 = p50
        elif mode in ("throughput", "fanout"):
            rate = lambda r: dig(r, "load", "consumed_per_s")  # noqa: E731
            p50 = lambda r: ms(dig(r, "load", "latency", "p50_us"))  # noqa: E731
            p99 = lambda r: ms(dig(r, "load", "latency", "p99_us"))  # noqa: E731
        else:
            continue
        w = {k: median(map(f, sides["warren"])) for k, f in
             (("rate", rate), ("cpu", cpu_per_million), ("p50", p50), ("p99", p99))}
        r = {k: median(map(f, sides["rabbitmq"])) for k, f in
             (("rate", rate), ("cpu", cpu_per_million), ("p50", p50), ("p99", p99))}
        label = scenario + (" (drain)" if mode == "backlog" else "")
        label += " (deliveries)" if mode == "fanout" else ""
        lines.append(
            f"| {label} | {fmt(w['rate'], '{:,.0f}')} | {fmt(r['rate'], '{:,.0f}')} "
            f"| {fmt(ratio(w['rate'], r['rate']), '{:.2f}')} "
            f"| {fmt(w['cpu'], '{:.2f}')} | {fmt(r['cpu'], '{:.2f}')} "
            f"| {fmt(ratio(w['cpu'], r['cpu']), '{:.2f}')} "
            f"| {fmt(w['p50'], '{:.2f}')} / {fmt(w['p99'], '{:.2f}')} "
            f"| {fmt(r['p50'], '{:.2f}')} / {fmt(r['p99'], '{:.2f}')} "
            f"| {fmt(ratio(w['p50'], r['p50']), '{:.2f}')} "
            f"| {fmt(ratio(w['p99'], r['p99']), '{:.2f}')} |"
        )
    return lines


def details(runs, failed):
    """Every metric of every scenario: median, each run, ratio."""
    lines = []
    for scenario in sorted(set(runs) | set(failed), key=lambda s: int(s[1:])):
        sides = runs.get(scenario, {})
        any_reports = [r for b in BROKERS for r in sides.get(b, [])]
        lines += ["", f"### {TITLES.get(scenario, scenario)}", ""]
        if not any_reports:
            lines.append("every run failed")
            continue
        lines += [
            "| metric | Warren | RabbitMQ | W/R | better | Warren runs | RabbitMQ runs |",
            "|---|--:|--:|--:|---|---|---|",
        ]
        for label, extract, pattern, better in metrics_for(any_reports):
            values = {b: [extract(r) for r in sides.get(b, [])] for b in BROKERS}
            med = {b: median(values[b]) for b in BROKERS}
            each = {b: ", ".join(fmt(v, pattern) for v in values[b]) or "–" for b in BROKERS}
            lines.append(
                f"| {label} | {fmt(med['warren'], pattern)} | {fmt(med['rabbitmq'], pattern)} "
                f"| {fmt(ratio(med['warren'], med['rabbitmq']), '{:.2f}')} | {better} "
                f"| {each['warren']} | {each['rabbitmq']} |"
            )
        for label, extract, pattern in (
            ("warren-perf CPU-s", perf_cpu, "{:.1f}"),
            ("other processes' CPU-s", other_cpu, "{:.1f}"),
            ("CPU-s the host stole", steal, "{:.2f}"),
            ("wall s", wall, "{:.0f}"),
        ):
            values = {b: [extract(r) for r in sides.get(b, [])] for b in BROKERS}
            each = {b: ", ".join(fmt(v, pattern) for v in values[b]) or "–" for b in BROKERS}
            lines.append(
                f"| {label} | {fmt(median(values['warren']), pattern)} "
                f"| {fmt(median(values['rabbitmq']), pattern)} | | "
                f"| {each['warren']} | {each['rabbitmq']} |"
            )
        errors = {b: sum(r.get("errors", 0) for r in sides.get(b, [])) for b in BROKERS}
        lines.append(f"| errors reported (all runs) | {errors['warren']} | {errors['rabbitmq']} "
                     "| | | | |")
        for b in BROKERS:
            if failed.get(scenario, {}).get(b):
                lines.append(f"\n{b}: {failed[scenario][b]} run(s) produced no report")
            samples = {s for r in sides.get(b, []) for s in r.get("error_samples", [])}
            for sample in sorted(samples)[:5]:
                lines.append(f"\n{b} error: `{sample}`")
    return lines


def main():
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    runs, failed = load(directory)
    out = ["## Medians and Warren/RabbitMQ ratios", ""]
    out += headline(runs)
    out += ["", "W/R: throughput above 1, CPU and latency below 1 favour Warren. "
            "CPU-s/M: broker CPU seconds per million messages published "
            "(S6: per million deliveries).", "",
            "## Every metric and run", "",
            "Other processes' CPU-s: the machine's busy CPU-s during the run less the broker's "
            "and warren-perf's; above a few tenths, something else competed for the 2 cores."]
    out += details(runs, failed)
    print("\n".join(out))


if __name__ == "__main__":
    main()
