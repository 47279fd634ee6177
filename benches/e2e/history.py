#!/usr/bin/env python3
"""Ferry against rclone across many benches/e2e runs: one line per run, then how often each target held.

A single run's ratio moves by 10 to 20 % on a 2-vCPU machine, so whether a target is met is a
question about the series, not one run. Each results file is one run; within it every Ferry
result is paired with rclone's of the same round and the run's figure is the median of those
ratios, as `summary.py` judges one run.

Usage: benches/e2e/history.py RESULTS.jsonl...   (e.g. docs/bench-results/2026-11-2*-run*.jsonl)
"""
import json
import re
import statistics
import sys

# (set, tool) -> CPU-per-GiB target as a ratio of rclone's (the targets); throughput >= 1
TARGETS = {"small": 0.5, "large": 0.75}
TOOLS = ("copy-direct", "records-direct", "copy", "records")


def run_number(path):
    m = re.search(r"run(\d+)", path)
    return int(m.group(1)) if m else 0


def medians(path):
    """(set, tool) -> (median CPU ratio, median throughput ratio, rounds) for one results file."""
    by_round = {}
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if "set" not in r or "tool" not in r:
            continue
        by_round.setdefault((r["set"], r.get("round", 1)), {})[r["tool"]] = r
    pairs = {}
    for (s, _), tools in by_round.items():
        rc = tools.get("rclone")
        if rc is None:
            continue
        for t in TOOLS:
            f = tools.get(t)
            if f is not None:
                pairs.setdefault((s, t), []).append(
                    (f["cpu_secs_per_gib"] / rc["cpu_secs_per_gib"], f["mb_per_s"] / rc["mb_per_s"]))
    return {k: (statistics.median(c for c, _ in v), statistics.median(t for _, t in v), len(v))
            for k, v in pairs.items()}


def ratio(value, target):
    """Two decimals, three where two would hide which side of the target the value is on."""
    return f"{value:.3f}" if abs(value - target) < 0.005 else f"{value:.2f}"


def main(paths):
    if not paths:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    paths = sorted(paths, key=run_number)
    # files with no Ferry-rclone pair (an idle or listing run) have no row
    per_run = [(f"run {run_number(p)}" if run_number(p) else p, medians(p)) for p in paths]
    per_run = [(label, m) for label, m in per_run if m]
    columns = [(s, t) for s in TARGETS for t in TOOLS if any((s, t) in m for _, m in per_run)]
    print("| run | " + " | ".join(f"{s} {t}: CPU / throughput" for s, t in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label, m in per_run:
        cells = []
        for k in columns:
            if k in m:
                cpu, thr, _ = m[k]
                cells.append(f"{ratio(cpu, TARGETS[k[0]])}x{'' if cpu <= TARGETS[k[0]] else ' (missed)'} / {ratio(thr, 1.0)}x{'' if thr >= 1 else ' (missed)'}")
            else:
                cells.append("")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    for s, t in columns:
        runs = [m[(s, t)] for _, m in per_run if (s, t) in m]
        cpu = [c for c, _, _ in runs]
        thr = [x for _, x, _ in runs]
        met = sum(c <= TARGETS[s] for c in cpu)
        thr_met = sum(x >= 1 for x in thr)
        print(f"- {s} {t}: CPU/GiB target <= {TARGETS[s]}x met in {met} of {len(cpu)} runs "
              f"(medians {min(cpu):.2f}x to {max(cpu):.2f}x, middle {statistics.median(cpu):.2f}x); "
              f"throughput >= 1x in {thr_met} of {len(thr)} ({min(thr):.2f}x to {max(thr):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
