-- wrk script: at the end, one machine-readable line with the request count and latency
-- percentiles in microseconds (wrk's own histogram), parsed by benches/run.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKSTATS requests=%d duration_us=%d socket_errors=%d non2xx=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
