#!/usr/bin/env python3
"""Summarises benches/e2e results.jsonl: a table per set and Ferry/rclone ratios against the targets."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = {(r["set"], r["tool"]): r for r in rows if "set" in r}
print("| set | tool | blobs | MB | wall s | MB/s | CPU s | CPU s/GiB | peak RSS MiB | dest objects |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (s, t), r in runs.items():
    print(f"| {s} | {t} | {r['blobs']} | {r['bytes']/1e6:.0f} | {r['wall_secs']} | {r['mb_per_s']} | "
          f"{r['cpu_secs']} | {r['cpu_secs_per_gib']} | {r['max_rss_mib']} | {r['dest_objects']} |")
print()
targets = {"small": 0.5, "large": 0.75}
for s, cpu_target in targets.items():
    rc = runs.get((s, "rclone"))
    if not rc:
        continue
    for t in ("copy", "records", "copy-direct", "records-direct"):
        f = runs.get((s, t))
        if not f:
            continue
        thr = f["mb_per_s"] / rc["mb_per_s"]
        cpu = f["cpu_secs_per_gib"] / rc["cpu_secs_per_gib"]
        print(f"- {s} {t}: throughput {thr:.2f}x rclone (target >= 1: {'met' if thr >= 1 else 'MISSED'}); "
              f"CPU/GiB {cpu:.2f}x rclone (target <= {cpu_target}: {'met' if cpu <= cpu_target else 'MISSED'}); "
              f"peak RSS {f['max_rss_mib']} MiB (target < 150: {'met' if f['max_rss_mib'] < 150 else 'MISSED'})")
h = runs.get(("huge", "copy"))
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
