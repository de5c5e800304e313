#!/usr/bin/env python3
"""verify.py caught-up|is-caught-up|check WORK: reads the JSON lines that Kafka's verifiable producer
(WORK/producer.jsonl) and consumer (WORK/consumer.jsonl) wrote during failover.sh.

  caught-up  waits up to 90 s until the consumer has reached every partition's last
             acknowledged offset; exits 1 if it never does.
  is-caught-up  the same, checked once (for logs copied in from elsewhere).
  check      every acknowledged record was consumed with its value, no offset carries two
             values, consumption never went backwards; prints the failover times of the
             events in WORK/events (kind partition broker epoch-ms per line), and their
             median and maximum per kind of event. Also fails if an acknowledged value
             was stored at two offsets (a duplicate) or a successful offset commit moved a
             partition's committed offset backwards.

VERIFY_LABEL (default "failover") prefixes the printed lines."""
import json
import os
import sys
import time

LABEL = os.environ.get("VERIFY_LABEL", "failover")


def load(work, name, kind):
    """The events named `kind` in one log, skipping lines that are not JSON."""
    out = []
    with open(os.path.join(work, name)) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("name") == kind:
                out.append(e)
    return out


def last_offsets(events):
    """Highest offset per partition."""
    last = {}
    for e in events:
        last[e["partition"]] = max(last.get(e["partition"], -1), e["offset"])
    return last


def is_caught_up(work):
    """0 if the consumer has reached every partition's last acknowledged offset now."""
    want = last_offsets(load(work, "producer.jsonl", "producer_send_success"))
    got = last_offsets(load(work, "consumer.jsonl", "record_data"))
    return 0 if want and all(got.get(p, -1) >= o for p, o in want.items()) else 1


def caught_up(work):
    deadline = time.time() + 90
    while time.time() < deadline:
        if is_caught_up(work) == 0:
            return 0
        time.sleep(1)
    return 1


def check(work):
    acked = load(work, "producer.jsonl", "producer_send_success")
    consumed = load(work, "consumer.jsonl", "record_data")
    seen = {}
    for e in consumed:
        key = (e["partition"], e["offset"])
        if key in seen and seen[key] != e["value"]:
            sys.exit(f"offset {key} consumed with two values: {seen[key]} and {e['value']}")
        seen[key] = e["value"]
    lost = [(e["partition"], e["offset"], e["value"]) for e in acked
            if seen.get((e["partition"], e["offset"])) != e["value"]]
    if lost:
        sys.exit(f"{len(lost)} acknowledged records missing or changed, e.g. {lost[:5]}")
    # In order per partition: each consumer pass reads offsets in increasing order.
    last = {}
    for e in consumed:
        p, o = e["partition"], e["offset"]
        if p in last and o <= last[p] and (last[p] - o) > 100000:
            sys.exit(f"partition {p} went backwards from {last[p]} to {o}")
        last[p] = o
    offsets_of = {}
    for (p, o), value in seen.items():
        offsets_of.setdefault((p, value), []).append(o)
    acked_values = {(e["partition"], e["value"]) for e in acked}
    duplicates = [(k, v) for k, v in offsets_of.items() if len(v) > 1 and k in acked_values]
    if duplicates:
        sys.exit(f"{len(duplicates)} acknowledged records stored more than once, e.g. {duplicates[:5]}")
    committed = {}
    commits = 0
    for e in load(work, "consumer.jsonl", "offsets_committed"):
        if not e.get("success"):
            continue
        for c in e.get("offsets", []):
            p, o = c["partition"], c["offset"]
            if o < committed.get(p, -1):
                sys.exit(f"committed offset of partition {p} went back from {committed[p]} to {o}")
            committed[p] = o
            commits += 1
    print(f"[{LABEL}] {len(acked)} acknowledged records, all consumed ({len(consumed)} deliveries), "
          f"0 lost, 0 duplicated; {commits} committed offsets, none moved back")
    times = {}
    with open(os.path.join(work, "events")) as f:
        events = [line.split() for line in f if line.strip()]
    starts = sorted(int(e[3]) for e in events)
    for kind, p, broker, t in events:
        p, t = int(p), int(t)
        # Each event is judged up to the next one, so later faults are not counted twice.
        until = min([s for s in starts if s > t], default=None)
        after = [e["timestamp"] for e in acked if e["partition"] == p and e["timestamp"] > t]
        if not after:
            sys.exit(f"no acknowledged write to partition {p} after {kind} of broker {broker}")
        took = min(after) - t
        # A graceful stop keeps acknowledging for a moment: the outage is the longest pause
        # between acknowledged writes from the event until the next one.
        window = sorted(x for x in after if until is None or x <= until)
        gap = max([took] + [b - a for a, b in zip(window, window[1:])])
        print(f"[{LABEL}] {kind} of broker {broker} (partition {p}): "
              f"next acks=all write acknowledged after {took} ms, "
              f"longest pause in acknowledged writes {gap} ms")
        times.setdefault(kind, []).append(gap)
    for kind, gaps in times.items():
        gaps.sort()
        print(f"[{LABEL}] {kind} -> longest pause in acknowledged writes: median "
              f"{gaps[len(gaps)//2]} ms, max {gaps[-1]} ms over {len(gaps)}")
    return 0


if __name__ == "__main__":
    commands = {"caught-up": caught_up, "is-caught-up": is_caught_up, "check": check}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]](sys.argv[2]))
