-- wrk scenario for bench/run-gateway-bench.sh: a small, realistic
-- non-streamed OpenAI chat completion request.
--
--   ARK_BENCH_KEY=sk-ark-... wrk -t2 -c32 -d10s --latency \
--       -s bench/chat.lua http://127.0.0.1:PORT/v1/chat/completions
--
-- ARK_BENCH_KEY   bearer token sent in Authorization (a virtual key for
--                 mod_ark; plain mod_proxy ignores it)
-- ARK_BENCH_MODEL model name in the body (default gpt-4o-mini)
--
-- done() prints one machine-readable line (all latencies in microseconds):
--   BENCH requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N
--         max_us=N errors_connect=N errors_read=N errors_write=N
--         errors_timeout=N non2xx=N

local key = os.getenv("ARK_BENCH_KEY") or ""
local model = os.getenv("ARK_BENCH_MODEL") or "gpt-4o-mini"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["User-Agent"] = "OpenAI/Python 1.55.0"
if key ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = '{"model":"' .. model .. '","messages":['
   .. '{"role":"system","content":"You are a concise assistant. Answer in '
   .. 'one or two sentences."},'
   .. '{"role":"user","content":"What is the capital of France, and why '
   .. 'has it been important historically?"}],'
   .. '"temperature":0.2,"max_tokens":128}'

function done(summary, latency, requests)
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
