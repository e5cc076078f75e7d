"""benches/run's result table: rows.tsv (one line per row, figures of every round) in, markdown out.

Usage: python3 table.py ROWS_TSV

Columns of ROWS_TSV (tab-separated; figure fields are space-separated lists, one per round):
id, name, req/s, p50 µs, p99 µs, CPU µs/req, CPU %, skipped reason, problems, total CPU µs/req
(the contender plus its helper, e.g. the auth_request validator; empty when it has none).
A p99 of 0 means the tool gave none (h2load: its mean latency is in the p50 field).
Also prints, below the table, the gateway's cost per request split into Pingora's (the bare
Pingora row of the same set-up) and the gateway's own.
"""

import statistics
import sys


def nums(s):
    return [float(x) for x in s.split()]


def med(s):
    return statistics.median(nums(s)) if s.strip() else None


rows = [(line.rstrip("\n").split("\t") + [""] * 10)[:10] for line in open(sys.argv[1])]
rps_med = {r[0]: med(r[2]) for r in rows if r[2].strip()}
cpu_med = {r[0]: med(r[5]) for r in rows if r[5].strip()}

print("| contender | req/s (median) | p50 ms | p99 ms | proxy CPU µs/req | proxy CPU % of a core | × direct | × nginx |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for rid, name, rps, p50, p99, cpu, util, skipped, bad, cpu_total in rows:
    if not rps.strip():
        print(f"| {name} | {skipped or 'not measured'} | | | | | | |")
        continue
    m = rps_med[rid]
    x_direct = f"{m / rps_med['direct']:.2f}" if "direct" in rps_med else "–"
    x_nginx = f"{m / rps_med['nginx']:.2f}" if "nginx" in rps_med else "–"
    cpu_cell = f"{cpu_med[rid]:.1f}"
    if rid == "direct":
        cpu_cell += " (upstream itself)"
    if cpu_total.strip():
        cpu_cell += f" ({med(cpu_total):.1f} with the validator)"
    spread = f" (range {min(nums(rps)):.0f}–{max(nums(rps)):.0f})" if len(nums(rps)) > 1 else ""
    warn = f" ⚠ {bad.strip()}" if bad.strip() else ""
    p99_med = med(p99)
    p99_cell = f"{p99_med / 1000:.2f}" if p99_med else "–"
    print(f"| {name}{warn} | {m:.0f}{spread} | {med(p50) / 1000:.2f} | {p99_cell} | {cpu_cell} | "
          f"{med(util):.0f} | {x_direct} | {x_nginx} |")

# Pingora's share and ours, per request, for each gateway row with a bare Pingora row of the same set-up.
splits = [
    ("bare", "gw_public", "public route, one core, HTTP/1.1"),
    ("bare", "gw_auth", "authenticated route, one core, HTTP/1.1"),
    ("bare", "gw_bearer", "bearer route, one core, HTTP/1.1"),
    ("bare_tls", "gw_tls", "authenticated route, one core, HTTPS/1.1"),
    ("bare_h2", "gw_h2", "authenticated route, one core, HTTP/2 over TLS"),
    ("bare_2c", "gw_auth_2c", "authenticated route, two cores unpinned"),
]
lines = []
for bare, gw, what in splits:
    if bare in cpu_med and gw in cpu_med:
        b, g = cpu_med[bare], cpu_med[gw]
        lines.append(f"| {what} | {g:.1f} | {b:.1f} | {g - b:.1f} | {100 * b / g:.0f} % |")
if lines:
    print()
    print("CPU per request split into Pingora's (the bare Pingora row: the same Pingora, features and")
    print("`ServerConf`, `upstream_peer` only) and the gateway's own (the difference):")
    print()
    print("| gateway row | gateway µs/req | bare Pingora µs/req | the gateway's own µs/req | Pingora's share |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(lines))
