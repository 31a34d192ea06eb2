-- wrk scenario for bench/cache-e2e.sh: like chat.lua, but every request
-- asks a different question, so a cache never answers it (a miss: lookup,
-- upstream call, store). Same BENCH line from done().
local key = os.getenv("ARK_BENCH_KEY") or ""
-- a nonce per wrk run: wrk seeds Lua's math.random the same way every
-- run, so without it every run asked the same "new" questions again and
-- every run but the first was answered from the cache
local run = os.getenv("ARK_BENCH_RUN") or tostring(os.time())
local n = 0

function setup(thread)
   thread:set("tid", math.random(1, 1000000000))
end

function request()
   n = n + 1
   local body = '{"model":"gpt-4o-mini","messages":['
      .. '{"role":"system","content":"You are a concise assistant."},'
      .. '{"role":"user","content":"Question ' .. run .. '-' .. tostring(tid) .. '-'
      .. n .. ': what is the capital of France?"}],'
      .. '"temperature":0.2,"max_tokens":128}'
   return wrk.format("POST", nil, {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key }, body)
end

done = dofile(os.getenv("ARK_BENCH_DIR") .. "/bench-done.lua")
