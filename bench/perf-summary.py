#!/usr/bin/python3
"""Where the httpd CPU goes, per request, for each benchmark variant.

Reads `perf script -F comm,tid,ip,sym,dso` output (DWARF call graphs, as
written by bench/run-gateway-bench.sh --perf) and sorts every sample into
one bucket by its call stack, then prints CPU microseconds per request per
bucket, side by side:

  perf-summary.py --freq 999 a=perf-a.txt:REQUESTS b=perf-b.txt:REQUESTS

Buckets are found by shared object and a few httpd function names, so
they survive renames inside mod_ark:
  mod_ark frames with libjansson below them   -> JSON (jansson)
  mod_ark frames with libcurl below them      -> libcurl, split into
                                                 kernel (syscalls) and user
  frames of the native HTTP client            -> native HTTP client, split
  (ark_http_native.c) below any other mod_ark    the same way
  frame
  mod_ark frames with libcrypto below them    -> key hash (OpenSSL)
  other mod_ark frames                        -> mod_ark itself
  mod_proxy / mod_proxy_http frames           -> mod_proxy handler
  ap_directory_walk (map_to_storage)          -> filesystem walk, .htaccess
  ... and the httpd core / MPM remainder.
Samples are CPU time of the sampled httpd only (perf record -p).
"""
import collections
import sys

BUCKETS = [
    "ark: JSON (jansson)",
    "ark: libcurl, kernel (syscalls, scheduling)",
    "ark: libcurl, user space",
    "ark: native HTTP client, kernel (syscalls, scheduling)",
    "ark: native HTTP client, user space",
    "ark: key hash (OpenSSL)",
    "ark: mod_ark, APR, libc",
    "proxy: mod_proxy handler, kernel",
    "proxy: mod_proxy handler, user space",
    "core: map_to_storage (directory walk, .htaccess)",
    "core: reading the request",
    "core: other request processing (filters, output)",
    "mpm: worker queue wait / wake-up",
    "mpm: listener, epoll, other",
]


def samples(path):
    stack = []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if stack:
                    yield stack
                stack = []
                continue
            if not line[0].isspace():       # "comm tid" header line
                stack = []
                continue
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                continue
            text = parts[1]
            i = text.rfind(" (")
            if i < 0:
                continue
            sym, dso = text[:i], text[i + 2:-1].rsplit("/", 1)[-1]
            stack.append((sym, dso))
    if stack:
        yield stack


# functions of mod_ark/ark_http_native.c (static ones may be inlined)
NATIVE_SYMS = {
    "ark_native_perform", "ark_native_create", "ark_hresp_parse",
    "ark_hresp_eof", "ark_hresp_init", "ark_http_retry_after_parse",
    "exchange", "wait_fd", "connect_new", "idle_take", "idle_put",
    "endpoint_get", "endpoint_addrs", "conn_alive", "head_make",
    "url_split", "head_parse", "head_append", "body_piece", "io_fail",
}


def bucket(stack):
    """stack: leaf first."""
    kernel_leaf = stack[0][1].startswith("[kernel")
    for i, (sym, dso) in enumerate(stack):
        if dso.startswith("mod_ark"):
            below = [d for _, d in stack[:i]]
            if any(d.startswith("libjansson") for d in below):
                return BUCKETS[0]
            if any(d.startswith("libcurl") for d in below):
                return BUCKETS[1] if kernel_leaf else BUCKETS[2]
            if sym in NATIVE_SYMS:
                return BUCKETS[3] if kernel_leaf else BUCKETS[4]
            if any(d.startswith("libcrypto") for d in below):
                return BUCKETS[5]
            return BUCKETS[6]
        if dso.startswith("mod_proxy"):
            return BUCKETS[7] if kernel_leaf else BUCKETS[8]
    syms = {s for s, _ in stack}
    if "ap_directory_walk" in syms or "ap_run_map_to_storage" in syms:
        return BUCKETS[9]
    if "ap_read_request" in syms:
        return BUCKETS[10]
    if "ap_run_process_connection" in syms:
        return BUCKETS[11]
    if "ap_queue_pop_something" in syms:
        return BUCKETS[12]
    return BUCKETS[13]


def main(argv):
    freq = 999.0
    specs = []
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--freq":
            freq = float(args.pop(0))
        else:
            specs.append(a)
    if not specs:
        sys.exit(__doc__)
    cols = []
    for spec in specs:
        name, rest = spec.split("=", 1)
        path, reqs = rest.rsplit(":", 1)
        counts = collections.Counter(bucket(s) for s in samples(path))
        cols.append((name, counts, float(reqs)))
    us = 1e6 / freq
    head = "| CPU us per request | " + " | ".join(c[0] for c in cols) + " |"
    print(head)
    print("|---|" + "---:|" * len(cols))
    for b in BUCKETS:
        if not any(c[1][b] for c in cols):
            continue
        print("| %s | %s |" % (b, " | ".join(
            "%.1f" % (c[1][b] * us / c[2]) for c in cols)))
    print("| **total (sampled)** | %s |" % " | ".join(
        "**%.1f**" % (sum(c[1].values()) * us / c[2]) for c in cols))


if __name__ == "__main__":
    main(sys.argv[1:])
