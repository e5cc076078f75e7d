"""`benches/run --check`: compares ratios of one short run with the floors in benches/check-thresholds.

Usage: python3 check.py THRESHOLDS ROWS_TSV

THRESHOLDS has lines `NAME NUMERATOR DENOMINATOR FIELD MINIMUM` ('#' starts a comment): the
ratio of two rows' medians of FIELD (`rps`, or `cpu`, where the ratio is inverted so that higher
is better for both) must be at least MINIMUM. ROWS_TSV is benches/run's rows.tsv (see table.py).
Prints one line per ratio and exits 1 when any is below its floor or could not be measured.
"""

import statistics
import sys

FIELDS = {"rps": 2, "cpu": 5}

rows = {}
for line in open(sys.argv[2]):
    cells = line.rstrip("\n").split("\t")
    rows[cells[0]] = cells

failed = 0
for raw in open(sys.argv[1]):
    line = raw.split("#", 1)[0].strip()
    if not line:
        continue
    name, num, den, field, floor = line.split()
    floor = float(floor)
    try:
        a = statistics.median(float(x) for x in rows[num][FIELDS[field]].split())
        b = statistics.median(float(x) for x in rows[den][FIELDS[field]].split())
    except (KeyError, IndexError, statistics.StatisticsError):
        print(f"FAIL {name}: {num} or {den} was not measured")
        failed += 1
        continue
    ratio = a / b if field == "rps" else b / a
    verdict = "ok  " if ratio >= floor else "FAIL"
    failed += ratio < floor
    how = f"{num} {a:.0f} / {den} {b:.0f} req/s" if field == "rps" else f"{den} {b:.1f} / {num} {a:.1f} CPU µs/req"
    print(f"{verdict} {name}: {ratio:.3f} (floor {floor:.3f}; {how})")
sys.exit(1 if failed else 0)
