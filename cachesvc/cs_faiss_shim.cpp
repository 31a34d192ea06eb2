/* ark-cached: the part of the FAISS C API that cs_index.c calls, for
 * systems whose FAISS has no libfaiss_c.
 *
 * Debian 12's libfaiss-dev ships the C API headers (faiss/c_api/) but
 * only the C++ library (libfaiss.a); the C wrappers are not in it. When
 * configure finds a real libfaiss_c it defines HAVE_FAISS_C and this file
 * compiles to cs_faiss_set_threads alone. Otherwise it implements exactly
 * the functions defined below (those cs_index.c and bench/index_bench.c
 * call), and no others, on top of the C++ library.
 *
 * Contract, as in FAISS's own c_api: every function returns 0 on success
 * or a negative FaissErrorCode (FAISS_EXCEPT for faiss::FaissException,
 * STD_EXCEPT for other std::exception, including std::bad_alloc,
 * UNKNOWN_EXCEPT for anything else); no C++ exception ever crosses into
 * C. The message of the calling thread's last failure is kept in
 * thread-local storage and returned by faiss_get_last_error (NULL before
 * any failure; valid until this thread's next failing call).
 *
 * The definitions sit inside extern "C" after the c_api headers, so a
 * signature that drifts from the headers is a compile error ("conflicting
 * declaration of C function") instead of a silent C++ overload.
 *
 * Ownership is FAISS's: objects made by *_new / faiss_index_factory /
 * faiss_read_index belong to the caller, who frees them with the matching
 * *_free. Thread safety is FAISS's too: const operations (search, write)
 * may run concurrently on one index; mutations need exclusive access,
 * which cs_index provides with its rwlock.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <omp.h>

#include "cs_faiss_shim.h"

extern "C" void cs_faiss_set_threads(int n)
{
    omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
}

#ifndef HAVE_FAISS_C

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include <faiss/AutoTune.h>
#include <faiss/Index.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

namespace {

/* The calling thread's last failure. */
thread_local std::string cs_last_error;
thread_local bool cs_have_error = false;

int cs_fail(int code, const char *what)
{
    try {
        cs_last_error = what ? what : "unknown error";
    }
    catch (...) {
        /* No memory even for the message: keep the old text. */
    }
    cs_have_error = true;
    return code;
}

/* The one translator from C++ exceptions to C API codes. Call it only
 * from inside a catch block: it rethrows the current exception to sort
 * it. */
int cs_translate_current(void)
{
    try {
        throw;
    }
    catch (const faiss::FaissException &e) {
        return cs_fail(FAISS_EXCEPT, e.what());
    }
    catch (const std::exception &e) {
        return cs_fail(STD_EXCEPT, e.what());
    }
    catch (...) {
        return cs_fail(UNKNOWN_EXCEPT, "unknown C++ exception");
    }
}

inline faiss::Index *cs_ix(FaissIndex *p)
{
    return reinterpret_cast<faiss::Index *>(p);
}

inline const faiss::Index *cs_cix(const FaissIndex *p)
{
    return reinterpret_cast<const faiss::Index *>(p);
}

} /* namespace */

#define CS_SHIM_TRY try {
#define CS_SHIM_CATCH                                                       \
    }                                                                       \
    catch (...) {                                                           \
        return cs_translate_current();                                      \
    }                                                                       \
    return OK;

extern "C" {

const char *faiss_get_last_error()
{
    return cs_have_error ? cs_last_error.c_str() : nullptr;
}

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric)
{
    CS_SHIM_TRY
    if (p_index == nullptr || description == nullptr) {
        return cs_fail(FAISS_EXCEPT, "faiss_index_factory: NULL argument");
    }
    *p_index = reinterpret_cast<FaissIndex *>(faiss::index_factory(
        d, description, static_cast<faiss::MetricType>(metric)));
    CS_SHIM_CATCH
}

void faiss_Index_free(FaissIndex *obj)
{
    /* Destructors of FAISS indexes do not throw. */
    delete cs_ix(obj);
}

int faiss_Index_d(const FaissIndex *obj)
{
    return cs_cix(obj)->d;
}

idx_t faiss_Index_ntotal(const FaissIndex *obj)
{
    return cs_cix(obj)->ntotal;
}

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    CS_SHIM_TRY
    cs_ix(index)->train(n, x);
    CS_SHIM_CATCH
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x,
                             const idx_t *xids)
{
    CS_SHIM_TRY
    cs_ix(index)->add_with_ids(n, x, xids);
    CS_SHIM_CATCH
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x,
                       idx_t k, float *distances, idx_t *labels)
{
    CS_SHIM_TRY
    cs_cix(index)->search(n, x, k, distances, labels);
    CS_SHIM_CATCH
}

int faiss_Index_reconstruct(const FaissIndex *index, idx_t key,
                            float *recons)
{
    CS_SHIM_TRY
    cs_cix(index)->reconstruct(key, recons);
    CS_SHIM_CATCH
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel,
                           size_t *n_removed)
{
    CS_SHIM_TRY
    size_t n = cs_ix(index)->remove_ids(
        *reinterpret_cast<const faiss::IDSelector *>(sel));
    if (n_removed != nullptr) {
        *n_removed = n;
    }
    CS_SHIM_CATCH
}

int faiss_IDSelectorRange_new(FaissIDSelectorRange **p_sel, idx_t imin,
                              idx_t imax)
{
    CS_SHIM_TRY
    *p_sel = reinterpret_cast<FaissIDSelectorRange *>(
        new faiss::IDSelectorRange(imin, imax));
    CS_SHIM_CATCH
}

void faiss_IDSelector_free(FaissIDSelector *obj)
{
    /* IDSelector has a virtual destructor: this frees any kind
     * (FaissIDSelectorRange is passed here cast, as the C API intends). */
    delete reinterpret_cast<faiss::IDSelector *>(obj);
}

int faiss_write_index(const FaissIndex *idx, FILE *f)
{
    CS_SHIM_TRY
    faiss::write_index(cs_cix(idx), f);
    CS_SHIM_CATCH
}

int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
    CS_SHIM_TRY
    *p_out = reinterpret_cast<FaissIndex *>(faiss::read_index(f, io_flags));
    CS_SHIM_CATCH
}

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
    CS_SHIM_TRY
    *space = reinterpret_cast<FaissParameterSpace *>(
        new faiss::ParameterSpace());
    CS_SHIM_CATCH
}

void faiss_ParameterSpace_free(FaissParameterSpace *obj)
{
    delete reinterpret_cast<faiss::ParameterSpace *>(obj);
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space,
                                             FaissIndex *index,
                                             const char *name, double value)
{
    CS_SHIM_TRY
    reinterpret_cast<const faiss::ParameterSpace *>(space)
        ->set_index_parameter(cs_ix(index), name, value);
    CS_SHIM_CATCH
}

} /* extern "C" */

#endif /* !HAVE_FAISS_C */
