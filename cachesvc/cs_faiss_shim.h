/* ark-cached: the one thing the daemon needs from FAISS that its C API
 * does not offer: how many OpenMP threads FAISS may use.
 *
 * FAISS parallelises over queries and over added vectors with OpenMP.
 * The daemon's worker threads each search one query at a time, where a
 * team of threads only adds start-up cost (see docs/vector-index.md), and
 * a rebuild adds many vectors at once, where a team helps. OpenMP keeps
 * this setting per calling thread, so each call site sets what it wants.
 * The C side never includes omp.h; cs_faiss_shim.cpp implements this
 * whether or not the rest of the FAISS C API comes from a real libfaiss_c.
 */
#ifndef CS_FAISS_SHIM_H
#define CS_FAISS_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

/* Sets the number of OpenMP threads FAISS uses for calls made later by
 * the calling thread (only that thread: OpenMP keeps it per thread).
 * n <= 0 means one per available core. Cheap (no thread is started
 * here), so it may be called before every FAISS call. Never fails. */
void cs_faiss_set_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* CS_FAISS_SHIM_H */
