-- The done() hook shared by the wrk scenarios: one machine-readable line,
-- latencies in microseconds.
return function(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.2f p50_us=%d p90_us=%d "
      .. "p99_us=%d max_us=%d errors_connect=%d errors_read=%d "
      .. "errors_write=%d errors_timeout=%d non2xx=%d\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status))
end
