"""benches/run's open-model latency table: openloop's JSON lines in, markdown out.

Usage: python3 latency.py NGINX_PEAK WORK_DIR TARGET...

Reads WORK_DIR/lat-<pct>-<target>.json (pct 25, 50, 75; targets direct, nginx, gw_auth) and
prints, per rate, the achieved rate and p50/p99/p99.9 of each target, and what nginx and the
gateway add to the direct figures. The verdict line compares the gateway's added p99 at 50 % with
the target (≤ 250 µs).
"""

import json
import os
import sys

NAMES = {"direct": "direct to the upstream", "nginx": "nginx proxy_pass", "gw_auth": "gateway, authenticated"}
TARGET_ADDED_P99_US = 250

peak = int(sys.argv[1])
work = sys.argv[2]
targets = sys.argv[3:]


def load(pct, target):
    path = os.path.join(work, f"lat-{pct}-{target}.json")
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
print("held it back, so a stall counts for every request it delays), at")
print(f"25, 50 and 75 % of nginx's median peak in this run ({peak} req/s). µs; the \"+\" columns are the")
print("difference to the direct row at the same rate: what the proxy adds.")
print()
print("| load | target | achieved req/s | p50 | p99 | p99.9 | + p50 | + p99 | + p99.9 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
verdict = None
for pct in (25, 50, 75):
    rate = peak * pct // 100
    base = load(pct, "direct")
    for target in targets:
        r = load(pct, target)
        if r is None:
            print(f"| {pct} % ({rate}/s) | {NAMES.get(target, target)} | no result | | | | | | |")
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
                verdict = r["p99"] - base["p99"]
        print(f"| {pct} % ({rate}/s) | {NAMES.get(target, target)}{note} | {r['rps']:.0f} | {r['p50']:.0f} | "
              f"{r['p99']:.0f} | {r['p999']:.0f} | {added[0]} | {added[1]} | {added[2]} |")
print()
if verdict is not None:
    met = "met" if verdict <= TARGET_ADDED_P99_US else "missed"
    print(f"Target: the gateway adds ≤ {TARGET_ADDED_P99_US} µs to p99 at 50 % load: {met} "
          f"({verdict:+.0f} µs at {peak * 50 // 100} req/s).")
