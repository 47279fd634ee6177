#!/usr/bin/env python3
"""Summarises benches/e2e results.jsonl: a table per set and Ferry/rclone ratios against the targets."""
import json
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
# (set, tool) -> {round: result}; a results file from before rounds existed is round 1
runs = {}
for r in rows:
    if "set" in r:
        runs.setdefault((r["set"], r["tool"]), {})[r.get("round", 1)] = r
rounds = sorted({n for by_round in runs.values() for n in by_round})
print("| set | tool | round | blobs | MB | wall s | MB/s | CPU s | CPU s/GiB | peak RSS MiB | dest objects |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (s, t), by_round in runs.items():
    for n, r in sorted(by_round.items()):
        print(f"| {s} | {t} | {n} | {r['blobs']} | {r['bytes']/1e6:.0f} | {r['wall_secs']} | {r['mb_per_s']} | "
              f"{r['cpu_secs']} | {r['cpu_secs_per_gib']} | {r['max_rss_mib']} | {r['dest_objects']} |")
print()
if len(rounds) > 1:
    print(f"{len(rounds)} rounds: each ratio pairs Ferry and rclone of the same round; the verdict is on the median.")
    print()


def fmt(values):
    return " / ".join(f"{v:.2f}" for v in values)


targets = {"small": 0.5, "large": 0.75}
for s, cpu_target in targets.items():
    rc = runs.get((s, "rclone"))
    if not rc:
        continue
    for t in ("copy", "records", "copy-direct", "records-direct"):
        f = runs.get((s, t))
        if not f:
            continue
        paired = [n for n in sorted(f) if n in rc]
        if not paired:
            continue
        thr = [f[n]["mb_per_s"] / rc[n]["mb_per_s"] for n in paired]
        cpu = [f[n]["cpu_secs_per_gib"] / rc[n]["cpu_secs_per_gib"] for n in paired]
        rss = max(f[n]["max_rss_mib"] for n in paired)
        thr_m, cpu_m = statistics.median(thr), statistics.median(cpu)
        per_round = f" (rounds: {fmt(thr)})" if len(paired) > 1 else ""
        per_round_cpu = f" (rounds: {fmt(cpu)})" if len(paired) > 1 else ""
        print(f"- {s} {t}: throughput {thr_m:.2f}x rclone{per_round} (target >= 1: {'met' if thr_m >= 1 else 'MISSED'}); "
              f"CPU/GiB {cpu_m:.2f}x rclone{per_round_cpu} (target <= {cpu_target}: {'met' if cpu_m <= cpu_target else 'MISSED'}); "
              f"peak RSS {rss} MiB (target < 150: {'met' if rss < 150 else 'MISSED'})")
tiny = {t: statistics.median(r["cpu_secs"] for r in by_round.values())
        for (s, t), by_round in runs.items() if s == "tiny"}
if tiny:
    print("- fixed cost of a run (tiny set, one 1 KiB blob per tenant; median CPU s): "
          + ", ".join(f"{t} {v:.2f}" for t, v in sorted(tiny.items())))
h = max(runs.get(("huge", "copy"), {}).values(), key=lambda r: r["max_rss_mib"], default=None)
if h:
    print(f"- 1 GiB single blob, copy: peak RSS {h['max_rss_mib']} MiB (target < 150: "
          f"{'met' if h['max_rss_mib'] < 150 else 'MISSED'}), {h['mb_per_s']} MB/s, {h['cpu_secs_per_gib']} CPU s/GiB")
for r in rows:
    if r.get("bench") == "idle":
        print(f"- idle, {r['tenants']} tenants, poll {r['poll_interval']}: Ferry {r['ferry_cpu_percent_of_core']} % of a core "
              f"over {r['measured_secs']} s (target < 1 %: {'met' if r['ferry_cpu_percent_of_core'] < 1 else 'MISSED'}); "
              f"token requests max {r['token_requests_max_per_pair']} per tenant+resource over "
              f"{r['token_tenant_resource_pairs']} pairs (target <= 1: {'met' if r['token_requests_max_per_pair'] <= 1 else 'MISSED'}); "
              f"{r['blob_requests_per_sec']} blob requests/s; VmHWM {r['ferry_vmhwm_mib']} MiB")
for r in rows:
    if r.get("bench") == "listing":
        print(f"- listing {r['listing']}, {r['blobs']} blobs ({r['resources']} resources x {r['hours']} hours), "
              f"poll {r['poll_interval']}: {r['list_calls_per_poll']} List Blobs calls and "
              f"{r['ferry_cpu_ms_per_poll']} ms of Ferry CPU per poll; VmHWM {r['ferry_vmhwm_mib']} MiB")
