# h2load's summary in, the WRKSTATS line of report.lua out (what benches/run's measure parses).
# h2load gives no percentiles: p50_us is its mean time per request, p99_us 0 (shown as "–").
function us(v) {
  if (v ~ /us$/) return v + 0
  if (v ~ /ms$/) return (v + 0) * 1000
  if (v ~ /s$/) return (v + 0) * 1e6
  return v + 0
}
/^finished in / { sub(/,$/, "", $3); dur = us($3) }
/^requests: / { done = $6; failed = $10 }
/^status codes: / { non2xx = $5 + $7 + $9 }
/^time for request: / { mean = us($6) }
END {
  if (dur > 0 && done > 0)
    printf "WRKSTATS requests=%d duration_us=%d socket_errors=%d non2xx=%d p50_us=%d p99_us=0\n",
      done, dur, failed, non2xx, mean
}
