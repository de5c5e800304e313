#!/usr/bin/env python3
"""verify_groups.py caught-up|check WORK: reads the JSON lines Kafka's verifiable producer
(WORK/producer.jsonl) and the verifiable consumers of one group (WORK/consumer-N.jsonl)
wrote during group-protocol.sh.

  caught-up  waits up to 90 s until the consumers together have reached every
             partition's last acknowledged offset; exits 1 if they never do.
  check      every acknowledged record was consumed with its value; no partition was
             held by two consumers at once (from their partitions_assigned and
             partitions_revoked events, one clock); prints the rebalances each consumer
             saw and the longest pause in consumption after each event of WORK/events."""
import glob
import json
import os
import sys
import time

from verify import last_offsets


def events(path):
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def consumers(work):
    """{consumer name: its events}"""
    return {os.path.basename(p)[: -len(".jsonl")]: events(p)
            for p in sorted(glob.glob(os.path.join(work, "consumer-*.jsonl")))}


def acked(work):
    return [e for e in events(os.path.join(work, "producer.jsonl"))
            if e.get("name") == "producer_send_success"]


def consumed(work):
    return [e for evs in consumers(work).values() for e in evs if e.get("name") == "record_data"]


def caught_up(work):
    deadline = time.time() + 90
    while time.time() < deadline:
        want = last_offsets(acked(work))
        got = last_offsets(consumed(work))
        if want and all(got.get(p, -1) >= o for p, o in want.items()):
            return 0
        time.sleep(1)
    return 1


def ownership(evs):
    """[(partition, start ms, end ms)] a consumer held; still held at its end: open."""
    held, spans = {}, []
    for e in evs:
        name = e.get("name")
        if name not in ("partitions_assigned", "partitions_revoked"):
            continue
        for tp in e.get("partitions", []):
            p = tp["partition"]
            if name == "partitions_assigned":
                held.setdefault(p, e["timestamp"])
            elif p in held:
                spans.append((p, held.pop(p), e["timestamp"]))
    spans.extend((p, start, float("inf")) for p, start in held.items())
    return spans


def check(work):
    by_consumer = consumers(work)
    records = consumed(work)
    seen = {}
    for e in records:
        seen.setdefault((e["partition"], e["offset"]), set()).add(e["value"])
    if any(len(v) > 1 for v in seen.values()):
        sys.exit("an offset was consumed with two values")
    sent = acked(work)
    lost = [(e["partition"], e["offset"]) for e in sent
            if e["value"] not in seen.get((e["partition"], e["offset"]), set())]
    if lost:
        sys.exit(f"{len(lost)} acknowledged records never consumed, e.g. {lost[:5]}")

    spans = [(p, s, t, name) for name, evs in by_consumer.items() for p, s, t in ownership(evs)]
    for p, s, t, name in spans:
        for q, s2, t2, other in spans:
            if q == p and other != name and s < t2 and s2 < t:
                sys.exit(f"partition {p} held by {name} ({s}..{t}) and {other} ({s2}..{t2}) at once")
    partitions = {p for p, *_ in spans}
    print(f"[group-protocol] {len(sent)} acknowledged records, all consumed "
          f"({len(records)} deliveries, {len(records) - len(seen)} redelivered); "
          f"{len(spans)} ownership spans over {len(partitions)} partitions, none overlapping")
    for name, evs in by_consumer.items():
        rebalances = sum(1 for e in evs if e.get("name") in ("partitions_assigned", "partitions_revoked"))
        print(f"[group-protocol] {name}: {rebalances} assignment changes")

    times = sorted(e["timestamp"] for e in records if "timestamp" in e)
    with open(os.path.join(work, "events")) as f:
        marks = [line.split() for line in f if line.strip()]
    for *what, t in marks:
        t = int(t)
        after = [x for x in times if x > t]
        if not after:
            continue
        window = [t] + after[: max(1, len(after))]
        gap = max(b - a for a, b in zip(window, window[1:]))
        print(f"[group-protocol] {' '.join(what)}: longest pause in consumption after it {gap} ms")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("caught-up", "check"):
        sys.exit(__doc__)
    sys.exit(caught_up(sys.argv[2]) if sys.argv[1] == "caught-up" else check(sys.argv[2]))
