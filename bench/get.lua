-- wrk scenario for bench/cache-e2e.sh: plain GET (the static-file
-- baseline), with the shared BENCH line.
done = dofile(os.getenv("ARK_BENCH_DIR") .. "/bench-done.lua")
