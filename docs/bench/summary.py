#!/usr/bin/env python3
"""Reads the wrk reports run.sh collected and prints, per case, the median over the rounds of
throughput, p50 and p99 latency, and the measured process's CPU per call (user space plus
kernel), as a Markdown table."""
import re, statistics, sys
from collections import defaultdict

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
def ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]

cases = defaultdict(list)
order = []
for block in open(sys.argv[1]).read().split("== ")[1:]:
    head, report = block.split("\n", 1)
    name, c, user0, kernel0, user1, kernel1, hz = head.split("|")
    requests = int(re.search(r"(\d+) requests in", report).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", report))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", report))
    row = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1)),
        "p50": ms(re.search(r" 50%\s+(\S+)", report).group(1)),
        "p99": ms(re.search(r" 99%\s+(\S+)", report).group(1)),
        "user": (int(user1) - int(user0)) / int(hz) * 1e6 / requests,
        "kernel": (int(kernel1) - int(kernel0)) / int(hz) * 1e6 / requests,
        "errors": errors,
    }
    key = (name, int(c))
    if key not in cases:
        order.append(key)
    cases[key].append(row)

median = lambda rows, k: statistics.median(r[k] for r in rows)
print("| case | connections | req/s | p50 | p99 | CPU per call: user + kernel | errors |")
print("|---|---|---|---|---|---|---|")
for key in sorted(order, key=lambda k: (k[1], order.index(k))):
    rows = cases[key]
    user, kernel = median(rows, "user"), median(rows, "kernel")
    cpu = f"{user + kernel:.0f} µs: {user:.0f} + {kernel:.0f}" if user + kernel else ""
    print(f"| {key[0]} | {key[1]} | {median(rows, 'rps'):,.0f} | {median(rows, 'p50'):.3f} ms "
          f"| {median(rows, 'p99'):.3f} ms | {cpu} | {sum(r['errors'] for r in rows)} |")
