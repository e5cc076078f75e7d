"""benches/run's open-model latency table: openloop's JSON lines in, markdown out.

Usage: python3 latency.py WORK_DIR "BASE=PEAK ..." TARGET...

Reads WORK_DIR/lat-<base>-<pct>-<target>.json (base nginx or gw_auth, whose median peak req/s set
the rates; pct 25, 50, 75; targets direct, nginx, bare, gw_auth) and prints, per rate, the achieved rate
and p50/p99/p99.9 of each target, and what nginx and the gateway add to the direct figures. The
verdict lines compare the gateway's added p99 at 50 % with the target (≤ 250 µs).
"""

import json
import os
import sys

NAMES = {
    "direct": "direct to the upstream",
    "nginx": "nginx proxy_pass",
    "bare": "bare Pingora (upstream_peer only)",
    "gw_auth": "gateway, authenticated",
}
TARGET_ADDED_P99_US = 250

work = sys.argv[1]
peaks = [(b.split("=")[0], int(b.split("=")[1])) for b in sys.argv[2].split()]
targets = sys.argv[3:]


def load(base, pct, target):
    path = os.path.join(work, f"lat-{base}-{pct}-{target}.json")
    try:
        with open(path) as f:
            data = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
    return {
        "rps": data["achieved"],
        "p50": data["p50_us"],
        "p99": data["p99_us"],
        "p999": data["p999_us"],
        "errors": data["errors"] + data["late"],
        "non2xx": data["non2xx"],
    }


print("`openloop` (benches/src/bin/openloop.rs) on the load core with the upstream, the same connections as")
print("wrk, a fixed rate whatever the answers do (latency from each request's scheduled start when the server")
print("held it back, so a stall counts for every request it delays), at 25, 50 and 75 % of the median peak")
print("req/s of nginx, then of the gateway's authenticated route, in this run's rounds:")
print(", ".join(f"{NAMES.get(b, b)} {p} req/s" for b, p in peaks) + ".")
print("µs; the \"+\" columns are the difference to the direct row at the same rate: what the proxy adds.")
print()
print("| load | target | achieved req/s | p50 | p99 | p99.9 | + p50 | + p99 | + p99.9 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
verdicts = []
floors = []
for base_name, peak in peaks:
    for pct in (25, 50, 75):
        rate = peak * pct // 100
        load_cell = f"{pct} % of {NAMES.get(base_name, base_name)} ({rate}/s)"
        base = load(base_name, pct, "direct")
        for target in targets:
            r = load(base_name, pct, target)
            if r is None:
                print(f"| {load_cell} | {NAMES.get(target, target)} | no result | | | | | | |")
                continue
            note = ""
            if r["errors"] or r["non2xx"]:
                note = f" ⚠ {r['errors']} errors or unanswered, {r['non2xx']} non-2xx"
            if r["rps"] < 0.95 * rate:
                note += " ⚠ below the asked rate: saturated"
            added = ["", "", ""]
            if base and target != "direct":
                added = [f"{r[k] - base[k]:+.0f}" for k in ("p50", "p99", "p999")]
                if target == "gw_auth" and pct == 50:
                    verdicts.append((base_name, rate, r["p99"] - base["p99"], bool(note)))
                if target == "bare" and pct == 50:
                    floors.append((base_name, rate, r["p99"] - base["p99"], bool(note)))
            print(f"| {load_cell} | {NAMES.get(target, target)}{note} | {r['rps']:.0f} | {r['p50']:.0f} | "
                  f"{r['p99']:.0f} | {r['p999']:.0f} | {added[0]} | {added[1]} | {added[2]} |")
print()
for base_name, rate, added_p99, flagged in verdicts:
    met = "met" if added_p99 <= TARGET_ADDED_P99_US and not flagged else "missed"
    if added_p99 < 0:
        # The direct row's p99 above the proxy's: a disturbance from outside the harness.
        met = "inconclusive (the direct row's p99 is the higher: noise from outside the harness)"
    print(f"Target, the gateway adds ≤ {TARGET_ADDED_P99_US} µs to p99 at 50 % of {NAMES.get(base_name, base_name)}'s "
          f"peak: {met} ({added_p99:+.0f} µs at {rate} req/s{', saturated or with errors' if flagged else ''}).")
for base_name, rate, added_p99, flagged in floors:
    print(f"Pingora's own share at 50 % of {NAMES.get(base_name, base_name)}'s peak: the bare Pingora proxy adds "
          f"{added_p99:+.0f} µs to p99 at {rate} req/s{', saturated or with errors' if flagged else ''}.")
