# oneDNN as fastnn's second GEMM engine: its matmul primitive behind gemm.pyx's engine slot
# (set_external_engine). Not a kernel with a NumPy twin: the NumPy backend keeps np.matmul.
#
# Design:
# - fastnn builds and imports without oneDNN: libdnnl.so.3 is loaded at run time (load(): dlopen,
#   then dlsym of the few C API functions of onednn_api.h), never linked against.
# - One matmul primitive per call shape: (trans_a, trans_b, m, n, k, lda, ldb, ldc, accumulate,
#   kind of operands, OpenMP threads), created on first use (a few ms: oneDNN generates its kernels then)
#   and kept in a fixed hash table. Each entry owns its memory objects (re-pointed per call with
#   set_data_handle), stream and scratchpad, so a call allocates nothing. accumulate (beta = 1)
#   is oneDNN's sum post-op, which adds in the same pass as the product.
# - Threads: the table is searched and grown under one mutex; an entry runs under its own,
#   taken with trylock, so a call whose entry another thread is running returns -1 and the BLAS
#   runs it (no waiting, no shared memory objects).
# - A call oneDNN cannot run returns -1 (the core falls back to the BLAS): a shape it has no
#   implementation for (float64 matmul on CPU in oneDNN 3.2; bfloat16 on a CPU without AVX-512
#   BF16 or AMX), remembered as such so that it is tried once; a full table; float work below
#   `_min_work` (see set_min_work).
# - Kinds of operands: float32, float64, and bfloat16 A and B (raw uint16 bits) with a float32 C
#   (float32 accumulation): gemm_bf16, for callers that keep bf16 copies (onednn.pxd).
from libc.stdint cimport int64_t, uint16_t, uint64_t, uintptr_t
from libc.stdlib cimport malloc
from libc.string cimport memset

import os
import sys

from .gemm cimport dgemm_engine_t, set_external_engine, sgemm_engine_t

cdef extern from "kernels.h" nogil:
    int omp_get_max_threads()

cdef extern from "onednn_api.h" nogil:
    ctypedef int fnn_dnnl_status_t
    ctypedef int64_t fnn_dnnl_dim_t
    ctypedef fnn_dnnl_dim_t fnn_dnnl_dims_t[12]
    ctypedef struct fnn_dnnl_exec_arg_t:
        int arg
        void* memory
    ctypedef struct fnn_dnnl_version_t:
        int major, minor, patch
        const char* hash
    enum:
        FNN_DNNL_CPU, FNN_DNNL_DATA_TYPE_UNDEF, FNN_DNNL_F32, FNN_DNNL_F64, FNN_DNNL_BF16,
        FNN_DNNL_STREAM_DEFAULT_FLAGS, FNN_DNNL_QUERY_IMPL_INFO_STR,
        FNN_DNNL_QUERY_SCRATCHPAD_MD, FNN_DNNL_SCRATCHPAD_MODE_USER, FNN_DNNL_ARG_SRC,
        FNN_DNNL_ARG_DST, FNN_DNNL_ARG_WEIGHTS, FNN_DNNL_ARG_SCRATCHPAD, FNN_HAVE_DLOPEN,
        RTLD_NOW, RTLD_LOCAL
    ctypedef fnn_dnnl_status_t (*fnn_engine_create_t)(void**, int, size_t)
    ctypedef fnn_dnnl_status_t (*fnn_stream_create_t)(void**, void*, unsigned)
    ctypedef fnn_dnnl_status_t (*fnn_stream_wait_t)(void*)
    ctypedef fnn_dnnl_status_t (*fnn_memory_desc_create_with_strides_t)(
        void**, int, const fnn_dnnl_dim_t*, int, const fnn_dnnl_dim_t*)
    ctypedef fnn_dnnl_status_t (*fnn_memory_desc_destroy_t)(void*)
    ctypedef size_t (*fnn_memory_desc_get_size_t)(const void*)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_attr_create_t)(void**)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_attr_destroy_t)(void*)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_attr_set_scratchpad_mode_t)(void*, int)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_attr_set_post_ops_t)(void*, const void*)
    ctypedef fnn_dnnl_status_t (*fnn_post_ops_create_t)(void**)
    ctypedef fnn_dnnl_status_t (*fnn_post_ops_destroy_t)(void*)
    ctypedef fnn_dnnl_status_t (*fnn_post_ops_append_sum_t)(void*, float, int, int)
    ctypedef fnn_dnnl_status_t (*fnn_matmul_primitive_desc_create_t)(
        void**, void*, const void*, const void*, const void*, const void*, const void*)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_desc_query_t)(const void*, int, int, void*)
    ctypedef const void* (*fnn_primitive_desc_query_md_t)(const void*, int, int)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_desc_destroy_t)(void*)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_create_t)(void**, const void*)
    ctypedef fnn_dnnl_status_t (*fnn_primitive_execute_t)(const void*, void*, int,
                                                            const fnn_dnnl_exec_arg_t*)
    ctypedef fnn_dnnl_status_t (*fnn_memory_create_t)(void**, const void*, void*, void*)
    ctypedef fnn_dnnl_status_t (*fnn_memory_set_data_handle_t)(void*, void*)
    ctypedef const fnn_dnnl_version_t* (*fnn_version_t)()
    ctypedef int (*fnn_get_effective_cpu_isa_t)()
    ctypedef const char* (*fnn_cpu_isa2str_t)(int)

    void* dlopen(const char* path, int flags)
    void* dlsym(void* handle, const char* name)
    const char* dlerror()
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t* mutex, const void* attr)
    int pthread_mutex_lock(pthread_mutex_t* mutex)
    int pthread_mutex_trylock(pthread_mutex_t* mutex)
    int pthread_mutex_unlock(pthread_mutex_t* mutex)

__all__ = ["load", "loaded", "library_path", "load_error", "version", "isa", "implementation",
           "enable", "disable", "enabled", "set_min_work", "cache_size", "scratchpad_bytes"]

# The C API, filled by load().
cdef fnn_engine_create_t engine_create = NULL
cdef fnn_stream_create_t stream_create = NULL
cdef fnn_stream_wait_t stream_wait = NULL
cdef fnn_memory_desc_create_with_strides_t memory_desc_create_with_strides = NULL
cdef fnn_memory_desc_destroy_t memory_desc_destroy = NULL
cdef fnn_memory_desc_get_size_t memory_desc_get_size = NULL
cdef fnn_primitive_attr_create_t primitive_attr_create = NULL
cdef fnn_primitive_attr_destroy_t primitive_attr_destroy = NULL
cdef fnn_primitive_attr_set_scratchpad_mode_t primitive_attr_set_scratchpad_mode = NULL
cdef fnn_primitive_attr_set_post_ops_t primitive_attr_set_post_ops = NULL
cdef fnn_post_ops_create_t post_ops_create = NULL
cdef fnn_post_ops_destroy_t post_ops_destroy = NULL
cdef fnn_post_ops_append_sum_t post_ops_append_sum = NULL
cdef fnn_matmul_primitive_desc_create_t matmul_primitive_desc_create = NULL
cdef fnn_primitive_desc_query_t primitive_desc_query = NULL
cdef fnn_primitive_desc_query_md_t primitive_desc_query_md = NULL
cdef fnn_primitive_desc_destroy_t primitive_desc_destroy = NULL
cdef fnn_primitive_create_t primitive_create = NULL
cdef fnn_primitive_execute_t primitive_execute = NULL
cdef fnn_memory_create_t memory_create = NULL
cdef fnn_memory_set_data_handle_t memory_set_data_handle = NULL
cdef fnn_version_t dnnl_version = NULL
cdef fnn_get_effective_cpu_isa_t get_effective_cpu_isa = NULL  # optional: reports only
cdef fnn_cpu_isa2str_t cpu_isa2str = NULL

cdef enum:
    KIND_F32 = 0
    KIND_F64 = 1
    KIND_BF16 = 2   # bfloat16 A and B, float32 C

cdef void* _engine = NULL       # oneDNN's CPU engine, created by load()
cdef bint _enabled = False
cdef int64_t _min_work = 0      # m * n * k below which a call goes to the BLAS
cdef bint _has_f64 = False      # whether this oneDNN has a float64 matmul (probed by load())

# ---- The primitive cache

cdef struct Entry:
    # key
    int64_t m, n, k, lda, ldb, ldc
    int flags           # trans_a | trans_b << 1 | accumulate << 2 | kind << 3
    int threads
    # value; prim is NULL when oneDNN has no implementation for this key
    void* pd
    void* prim
    void* stream
    void* mem_a
    void* mem_b
    void* mem_c
    void* mem_scratch
    void* scratch       # malloc'ed block holding the scratchpad
    const char* impl    # oneDNN's implementation name (owned by pd)
    pthread_mutex_t run

cdef enum:
    CAPACITY = 1024     # a power of two; a training run uses a few entries per layer
cdef Entry* _table[CAPACITY]
cdef int _count = 0
cdef size_t _scratch_total = 0  # bytes of all entries' scratchpads
cdef pthread_mutex_t _table_lock
pthread_mutex_init(&_table_lock, NULL)


cdef inline bint _same(const Entry* e, int64_t m, int64_t n, int64_t k, int64_t lda,
                       int64_t ldb, int64_t ldc, int flags, int threads) noexcept nogil:
    return (e.m == m and e.n == n and e.k == k and e.lda == lda and e.ldb == ldb and
            e.ldc == ldc and e.flags == flags and e.threads == threads)


cdef void* _memory_desc(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                        int dtype) noexcept nogil:
    cdef fnn_dnnl_dims_t dims, strides
    cdef void* md = NULL
    dims[0], dims[1], strides[0], strides[1] = rows, cols, row_stride, col_stride
    if memory_desc_create_with_strides(&md, 2, dims, dtype, strides) != 0:
        return NULL
    return md


cdef void _build(Entry* e) noexcept nogil:
    # Fill e's value from its key; on any failure e.prim stays NULL (calls go to the BLAS).
    # Runs under _table_lock.
    global _scratch_total
    cdef bint trans_a = e.flags & 1, trans_b = e.flags & 2, accumulate = e.flags & 4
    cdef int kind = e.flags >> 3
    cdef int dtype = FNN_DNNL_F64 if kind == KIND_F64 else FNN_DNNL_BF16 if kind == KIND_BF16 \
        else FNN_DNNL_F32
    cdef void* md_a = _memory_desc(e.m, e.k, 1 if trans_a else e.lda, e.lda if trans_a else 1,
                                   dtype)
    cdef void* md_b = _memory_desc(e.k, e.n, 1 if trans_b else e.ldb, e.ldb if trans_b else 1,
                                   dtype)
    cdef void* md_c = _memory_desc(e.m, e.n, e.ldc, 1,
                                   FNN_DNNL_F32 if kind == KIND_BF16 else dtype)
    cdef void* attr = NULL
    cdef void* post_ops = NULL
    cdef void* pd = NULL
    cdef void* prim = NULL
    cdef const void* md_scratch
    cdef size_t scratch_bytes
    cdef bint ok = md_a != NULL and md_b != NULL and md_c != NULL
    if ok and primitive_attr_create(&attr) == 0:
        ok = primitive_attr_set_scratchpad_mode(attr, FNN_DNNL_SCRATCHPAD_MODE_USER) == 0
        if ok and accumulate:
            ok = post_ops_create(&post_ops) == 0
            if ok:
                ok = (post_ops_append_sum(post_ops, 1.0, 0, FNN_DNNL_DATA_TYPE_UNDEF) == 0 and
                      primitive_attr_set_post_ops(attr, post_ops) == 0)
                post_ops_destroy(post_ops)
        ok = ok and matmul_primitive_desc_create(&pd, _engine, md_a, md_b, NULL, md_c, attr) == 0
        primitive_attr_destroy(attr)
    else:
        ok = False
    if ok:
        e.pd = pd
        primitive_desc_query(pd, FNN_DNNL_QUERY_IMPL_INFO_STR, 0, &e.impl)
        md_scratch = primitive_desc_query_md(pd, FNN_DNNL_QUERY_SCRATCHPAD_MD, 0)
        scratch_bytes = memory_desc_get_size(md_scratch) if md_scratch != NULL else 0
        ok = (primitive_create(&prim, pd) == 0 and
              stream_create(&e.stream, _engine, FNN_DNNL_STREAM_DEFAULT_FLAGS) == 0 and
              memory_create(&e.mem_a, md_a, _engine, NULL) == 0 and
              memory_create(&e.mem_b, md_b, _engine, NULL) == 0 and
              memory_create(&e.mem_c, md_c, _engine, NULL) == 0)
        if ok and scratch_bytes > 0:
            e.scratch = malloc(scratch_bytes + 64)
            _scratch_total += scratch_bytes + 64 if e.scratch != NULL else 0
            ok = e.scratch != NULL and memory_create(
                &e.mem_scratch, md_scratch, _engine,
                <void*> ((<uintptr_t> e.scratch + 63) & ~(<uintptr_t> 63))) == 0
        if ok:
            e.prim = prim
    # the primitive descriptor and the memory objects keep their own copies
    if md_a != NULL:
        memory_desc_destroy(md_a)
    if md_b != NULL:
        memory_desc_destroy(md_b)
    if md_c != NULL:
        memory_desc_destroy(md_c)


cdef Entry* _lookup(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc,
                    int flags) noexcept nogil:
    # The entry of this key, built on first use; NULL when the table is full or out of memory.
    global _count
    cdef int threads = omp_get_max_threads()
    cdef uint64_t h = (<uint64_t> m * 73856093) ^ (<uint64_t> n * 19349663) ^ \
        (<uint64_t> k * 83492791) ^ (<uint64_t> lda * 1640531527) ^ \
        (<uint64_t> ldb * 40503) ^ (<uint64_t> ldc * 1000003) ^ \
        (<uint64_t> flags * 97 + <uint64_t> threads * 7919)
    cdef Py_ssize_t i = <Py_ssize_t> (h & (CAPACITY - 1)), probes
    cdef Entry* e = NULL
    pthread_mutex_lock(&_table_lock)
    for probes in range(CAPACITY):
        e = _table[i]
        if e == NULL:
            break
        if _same(e, m, n, k, lda, ldb, ldc, flags, threads):
            pthread_mutex_unlock(&_table_lock)
            return e
        i = (i + 1) & (CAPACITY - 1)
    if e != NULL or _count >= CAPACITY // 2:  # full: keep probing short
        pthread_mutex_unlock(&_table_lock)
        return NULL
    e = <Entry*> malloc(sizeof(Entry))
    if e != NULL:
        memset(e, 0, sizeof(Entry))
        e.m, e.n, e.k, e.lda, e.ldb, e.ldc, e.flags, e.threads = \
            m, n, k, lda, ldb, ldc, flags, threads
        pthread_mutex_init(&e.run, NULL)
        _build(e)
        _table[i] = e
        _count += 1
    pthread_mutex_unlock(&_table_lock)
    return e


cdef int _run(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
              const void* A, Py_ssize_t lda, const void* B, Py_ssize_t ldb, bint accumulate,
              void* C, Py_ssize_t ldc, int kind) noexcept nogil:
    cdef Entry* e = _lookup(m, n, k, lda, ldb, ldc,
                            trans_a | trans_b << 1 | accumulate << 2 | kind << 3)
    cdef fnn_dnnl_exec_arg_t args[4]
    cdef int status
    if e == NULL or e.prim == NULL:
        return -1
    if pthread_mutex_trylock(&e.run) != 0:
        return -1
    memory_set_data_handle(e.mem_a, <void*> A)
    memory_set_data_handle(e.mem_b, <void*> B)
    memory_set_data_handle(e.mem_c, C)
    args[0].arg, args[0].memory = FNN_DNNL_ARG_SRC, e.mem_a
    args[1].arg, args[1].memory = FNN_DNNL_ARG_WEIGHTS, e.mem_b
    args[2].arg, args[2].memory = FNN_DNNL_ARG_DST, e.mem_c
    args[3].arg, args[3].memory = FNN_DNNL_ARG_SCRATCHPAD, e.mem_scratch
    # oneDNN checks the arguments before it writes C, so a failure leaves C for the BLAS to do.
    status = primitive_execute(e.prim, e.stream, 4 if e.mem_scratch != NULL else 3, args)
    if status == 0:
        status = stream_wait(e.stream)
    pthread_mutex_unlock(&e.run)
    return 0 if status == 0 else -1


cdef int _sgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb, float beta,
                float* C, Py_ssize_t ldc) noexcept nogil:
    if (beta != 0 and beta != 1) or <int64_t> m * n * k < _min_work:
        return -1
    return _run(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta != 0, C, ldc, KIND_F32)


cdef int _dgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                const double* A, Py_ssize_t lda, const double* B, Py_ssize_t ldb, double beta,
                double* C, Py_ssize_t ldc) noexcept nogil:
    if not _has_f64 or (beta != 0 and beta != 1) or <int64_t> m * n * k < _min_work:
        return -1
    return _run(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta != 0, C, ldc, KIND_F64)


cdef int gemm_bf16(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   const uint16_t* A, Py_ssize_t lda, const uint16_t* B, Py_ssize_t ldb,
                   float beta, float* C, Py_ssize_t ldc) noexcept nogil:
    # C (m, n) float32 = op(A) @ op(B) + beta * C with bfloat16 A and B (their bits), row-major,
    # accumulated in float32. Returns 0, or -1 when oneDNN is not loaded or cannot run it here
    # (no bf16 matmul on this CPU): the caller then multiplies its own way.
    if _engine == NULL or (beta != 0 and beta != 1):
        return -1
    if m == 0 or n == 0 or k == 0:
        return -1
    return _run(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta != 0, C, ldc, KIND_BF16)


# ---- Loading the library

_library_path = None
_load_error = None
_tried = False

_FUNCTIONS = ("dnnl_engine_create", "dnnl_stream_create", "dnnl_stream_wait",
              "dnnl_memory_desc_create_with_strides", "dnnl_memory_desc_destroy",
              "dnnl_memory_desc_get_size", "dnnl_primitive_attr_create",
              "dnnl_primitive_attr_destroy", "dnnl_primitive_attr_set_scratchpad_mode",
              "dnnl_primitive_attr_set_post_ops", "dnnl_post_ops_create",
              "dnnl_post_ops_destroy", "dnnl_post_ops_append_sum",
              "dnnl_matmul_primitive_desc_create", "dnnl_primitive_desc_query",
              "dnnl_primitive_desc_query_md", "dnnl_primitive_desc_destroy",
              "dnnl_primitive_create", "dnnl_primitive_execute", "dnnl_memory_create",
              "dnnl_memory_set_data_handle", "dnnl_version")


def _candidates():
    """Where libdnnl.so.3 may be, in order: FASTNN_ONEDNN_LIBRARY alone when it is set; else the
    lib directory of this Python's prefix (where the onednn-cpu-gomp wheel puts it, without an
    RPATH that would let the loader find it), of its base prefix and of the user base, then the
    loader's own search path."""
    explicit = os.environ.get("FASTNN_ONEDNN_LIBRARY", "").strip()
    if explicit:
        return [explicit]
    import site
    prefixes = [sys.prefix, sys.base_prefix, site.getuserbase()]
    paths = [os.path.join(p, "lib", "libdnnl.so.3") for p in dict.fromkeys(prefixes) if p]
    return [p for p in paths if os.path.exists(p)] + ["libdnnl.so.3"]


cdef object _open(str path):
    """Load the library at path and its functions; returns None, or why not."""
    global engine_create, stream_create, stream_wait, memory_desc_create_with_strides, \
        memory_desc_destroy, memory_desc_get_size, primitive_attr_create, \
        primitive_attr_destroy, primitive_attr_set_scratchpad_mode, \
        primitive_attr_set_post_ops, post_ops_create, post_ops_destroy, post_ops_append_sum, \
        matmul_primitive_desc_create, primitive_desc_query, primitive_desc_query_md, \
        primitive_desc_destroy, primitive_create, primitive_execute, memory_create, \
        memory_set_data_handle, dnnl_version, get_effective_cpu_isa, cpu_isa2str, _engine
    cdef bytes encoded = os.fsencode(path)
    cdef void* handle = dlopen(encoded, RTLD_NOW | RTLD_LOCAL)
    cdef void* found[22]
    cdef const char* error
    cdef bytes name
    if handle == NULL:
        error = dlerror()
        return error.decode(errors="replace") if error != NULL else f"cannot load {path}"
    for i, function in enumerate(_FUNCTIONS):
        name = function.encode()
        found[i] = dlsym(handle, name)
        if found[i] == NULL:
            return f"{path} has no {function} (fastnn needs oneDNN 3.x)"
    engine_create = <fnn_engine_create_t> found[0]
    stream_create = <fnn_stream_create_t> found[1]
    stream_wait = <fnn_stream_wait_t> found[2]
    memory_desc_create_with_strides = <fnn_memory_desc_create_with_strides_t> found[3]
    memory_desc_destroy = <fnn_memory_desc_destroy_t> found[4]
    memory_desc_get_size = <fnn_memory_desc_get_size_t> found[5]
    primitive_attr_create = <fnn_primitive_attr_create_t> found[6]
    primitive_attr_destroy = <fnn_primitive_attr_destroy_t> found[7]
    primitive_attr_set_scratchpad_mode = <fnn_primitive_attr_set_scratchpad_mode_t> found[8]
    primitive_attr_set_post_ops = <fnn_primitive_attr_set_post_ops_t> found[9]
    post_ops_create = <fnn_post_ops_create_t> found[10]
    post_ops_destroy = <fnn_post_ops_destroy_t> found[11]
    post_ops_append_sum = <fnn_post_ops_append_sum_t> found[12]
    matmul_primitive_desc_create = <fnn_matmul_primitive_desc_create_t> found[13]
    primitive_desc_query = <fnn_primitive_desc_query_t> found[14]
    primitive_desc_query_md = <fnn_primitive_desc_query_md_t> found[15]
    primitive_desc_destroy = <fnn_primitive_desc_destroy_t> found[16]
    primitive_create = <fnn_primitive_create_t> found[17]
    primitive_execute = <fnn_primitive_execute_t> found[18]
    memory_create = <fnn_memory_create_t> found[19]
    memory_set_data_handle = <fnn_memory_set_data_handle_t> found[20]
    dnnl_version = <fnn_version_t> found[21]
    get_effective_cpu_isa = <fnn_get_effective_cpu_isa_t> dlsym(handle, b"dnnl_get_effective_cpu_isa")
    cpu_isa2str = <fnn_cpu_isa2str_t> dlsym(handle, b"dnnl_cpu_isa2str")
    if dnnl_version().major != 3:
        return f"{path} is oneDNN {version()}; fastnn needs oneDNN 3.x"
    if engine_create(&_engine, FNN_DNNL_CPU, 0) != 0:
        _engine = NULL
        return f"{path}: oneDNN could not create its CPU engine"
    return None


def load():
    """Load oneDNN (libdnnl.so.3) once; returns whether it is loaded. load_error() says why not."""
    global _tried, _library_path, _load_error, _has_f64
    if _tried:
        return _engine != NULL
    _tried = True
    if not FNN_HAVE_DLOPEN:
        _load_error = "oneDNN is loaded on Linux only"
        return False
    errors = []
    for path in _candidates():
        error = _open(path)
        if error is None:
            _library_path, _load_error = path, None
            # oneDNN 3.2 has no float64 matmul on CPU: then float64 calls skip the cache
            _has_f64 = implementation(8, 8, 8, "float64") is not None
            return True
        errors.append(error)
    _load_error = "; ".join(errors)
    return False


def loaded():
    return _engine != NULL


def library_path():
    """The path oneDNN was loaded from (as given to the loader), or None."""
    return _library_path


def load_error():
    """Why load() failed (None when it did not, or was not called)."""
    return _load_error


def version():
    """oneDNN's version, e.g. "3.2.0", or None when it is not loaded."""
    if dnnl_version == NULL:
        return None
    cdef const fnn_dnnl_version_t* v = dnnl_version()
    return f"{v.major}.{v.minor}.{v.patch}"


_KINDS = {"float32": KIND_F32, "float64": KIND_F64, "bfloat16": KIND_BF16}


def isa():
    """The instruction set oneDNN dispatches to on this CPU (under ONEDNN_MAX_CPU_ISA), e.g.
    "avx2", "avx512_core_amx"; None when oneDNN is not loaded."""
    if get_effective_cpu_isa == NULL or cpu_isa2str == NULL:
        return None
    cdef const char* name = cpu_isa2str(get_effective_cpu_isa())
    return None if name == NULL else name.decode().removeprefix("cpu_isa_")


def implementation(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, dtype="float32", *,
                   trans_a=False, trans_b=False, accumulate=False):
    """The name of oneDNN's implementation of C (m, n) (+)= op(A) (m, k) @ op(B) (k, n) on
    contiguous operands (e.g. "brg:avx512_core", "gemm:jit:f32"), or None when oneDNN has none
    (or is not loaded). dtype: "float32", "float64", or "bfloat16" (bf16 A and B, float32 C)."""
    if _engine == NULL:
        return None
    if dtype not in _KINDS:
        raise ValueError(f"implementation: dtype must be one of {tuple(_KINDS)}, got {dtype!r}")
    if m < 1 or n < 1 or k < 1:
        raise ValueError(f"implementation: m, n, k must be >= 1, got {(m, n, k)}")
    lda = m if trans_a else k
    ldb = k if trans_b else n
    cdef Entry* e = _lookup(m, n, k, lda, ldb, n, bool(trans_a) | bool(trans_b) << 1 |
                            bool(accumulate) << 2 | <int> _KINDS[dtype] << 3)
    if e == NULL or e.prim == NULL or e.impl == NULL:
        return None
    return e.impl.decode()


def enable():
    """Run the compiled GEMM core on oneDNN (load() first). Returns whether it now does."""
    global _enabled
    if not load():
        return False
    set_external_engine(<sgemm_engine_t> _sgemm, <dgemm_engine_t> _dgemm)
    _enabled = True
    return True


def disable():
    """Run the compiled GEMM core on the BLAS again."""
    global _enabled
    set_external_engine(NULL, NULL)
    _enabled = False


def enabled():
    return _enabled


def set_min_work(work):
    """Send a call whose m * n * k is below `work` to the BLAS instead (0: none)."""
    global _min_work
    _min_work = max(0, int(work))


def cache_size():
    """How many call shapes have a cache entry (with or without a primitive)."""
    return _count


def scratchpad_bytes():
    """Bytes held by the cached primitives' scratchpads (oneDNN's working memory, one per
    entry, kept for the process's life)."""
    return _scratch_total


def _gemm(A, B, C, bint trans_a=False, bint trans_b=False, bint accumulate=False):
    """Test hook: C (+)= op(A) @ op(B) on oneDNN alone, for 2-D arrays with unit column stride
    and any row stride (lda, ldb, ldc), all float32, all float64, or A and B uint16 (bfloat16
    bits) with a float32 C. Returns 0, or -1 when oneDNN did not run it (C is then unchanged)."""
    import numpy as np
    if not load():
        raise RuntimeError(f"oneDNN is not loaded: {_load_error}")
    dtype = C.dtype
    operand_dtype = np.uint16 if A.dtype == np.uint16 and dtype == np.float32 else dtype
    for name, x, want in (("A", A, operand_dtype), ("B", B, operand_dtype), ("C", C, dtype)):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != want or \
                dtype not in (np.float32, np.float64) or x.strides[1] != x.itemsize:
            raise ValueError(f"_gemm: {name} must be a 2-D array of {np.dtype(want)} with unit "
                             "column stride")
    cdef Py_ssize_t m = C.shape[0], n = C.shape[1]
    cdef Py_ssize_t k = A.shape[0] if trans_a else A.shape[1]
    if (A.shape[1] if trans_a else A.shape[0]) != m or \
            (B.shape[1] if trans_b else B.shape[0]) != k or \
            (B.shape[0] if trans_b else B.shape[1]) != n:
        raise ValueError("_gemm: shapes do not match")
    cdef uintptr_t pa = A.ctypes.data, pb = B.ctypes.data, pc = C.ctypes.data
    cdef Py_ssize_t lda = max(1, A.strides[0] // A.itemsize)
    cdef Py_ssize_t ldb = max(1, B.strides[0] // B.itemsize)
    cdef Py_ssize_t ldc = max(1, C.strides[0] // C.itemsize)
    cdef int kind = KIND_F64 if dtype == np.float64 else \
        KIND_BF16 if operand_dtype == np.uint16 else KIND_F32
    cdef int status
    with nogil:
        status = _run(trans_a, trans_b, m, n, k, <void*> pa, lda, <void*> pb, ldb, accumulate,
                      <void*> pc, ldc, kind)
    return status
