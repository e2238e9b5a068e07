/* The part of oneDNN's C API (version 3.2, oneapi/dnnl/dnnl.h and dnnl_types.h) that
 * onednn.pyx uses for a matmul, as function-pointer types: fastnn never links against libdnnl,
 * it loads libdnnl.so.3 at run time (dlopen) and looks these functions up (dlsym). The values
 * below are oneDNN's own; the handles are opaque, so they are plain pointers here.
 *
 * Also the platform's dlopen and mutex, with stubs on Windows (oneDNN is not loaded there), so
 * that onednn.pyx builds everywhere the other kernels build.
 */
#ifndef FASTNN_ONEDNN_API_H
#define FASTNN_ONEDNN_API_H

#include <stddef.h>
#include <stdint.h>

typedef int fnn_dnnl_status_t;           /* dnnl_status_t: dnnl_success == 0 */
typedef int64_t fnn_dnnl_dim_t;
typedef fnn_dnnl_dim_t fnn_dnnl_dims_t[12];  /* DNNL_MAX_NDIMS */

typedef struct {
    int arg;
    void *memory;
} fnn_dnnl_exec_arg_t;

typedef struct {
    int major, minor, patch;
    const char *hash;
    unsigned cpu_runtime, gpu_runtime;
} fnn_dnnl_version_t;

enum {
    FNN_DNNL_CPU = 1,                     /* dnnl_cpu (dnnl_engine_kind_t) */
    FNN_DNNL_DATA_TYPE_UNDEF = 0,         /* dnnl_data_type_t */
    FNN_DNNL_BF16 = 2,
    FNN_DNNL_F32 = 3,
    FNN_DNNL_F64 = 7,
    FNN_DNNL_STREAM_DEFAULT_FLAGS = 1,    /* dnnl_stream_in_order */
    FNN_DNNL_QUERY_IMPL_INFO_STR = 8,     /* dnnl_query_t */
    FNN_DNNL_QUERY_SCRATCHPAD_MD = 136,
    FNN_DNNL_SCRATCHPAD_MODE_USER = 1,    /* dnnl_scratchpad_mode_t */
    FNN_DNNL_ARG_SRC = 1,
    FNN_DNNL_ARG_DST = 17,
    FNN_DNNL_ARG_WEIGHTS = 33,
    FNN_DNNL_ARG_SCRATCHPAD = 80
};

typedef fnn_dnnl_status_t (*fnn_engine_create_t)(void **engine, int kind, size_t index);
typedef fnn_dnnl_status_t (*fnn_stream_create_t)(void **stream, void *engine, unsigned flags);
typedef fnn_dnnl_status_t (*fnn_stream_wait_t)(void *stream);
typedef fnn_dnnl_status_t (*fnn_memory_desc_create_with_strides_t)(
    void **memory_desc, int ndims, const fnn_dnnl_dims_t dims, int data_type,
    const fnn_dnnl_dims_t strides);
typedef fnn_dnnl_status_t (*fnn_memory_desc_destroy_t)(void *memory_desc);
typedef size_t (*fnn_memory_desc_get_size_t)(const void *memory_desc);
typedef fnn_dnnl_status_t (*fnn_primitive_attr_create_t)(void **attr);
typedef fnn_dnnl_status_t (*fnn_primitive_attr_destroy_t)(void *attr);
typedef fnn_dnnl_status_t (*fnn_primitive_attr_set_scratchpad_mode_t)(void *attr, int mode);
typedef fnn_dnnl_status_t (*fnn_primitive_attr_set_post_ops_t)(void *attr, const void *post_ops);
typedef fnn_dnnl_status_t (*fnn_post_ops_create_t)(void **post_ops);
typedef fnn_dnnl_status_t (*fnn_post_ops_destroy_t)(void *post_ops);
typedef fnn_dnnl_status_t (*fnn_post_ops_append_sum_t)(void *post_ops, float scale,
                                                        int32_t zero_point, int data_type);
typedef fnn_dnnl_status_t (*fnn_matmul_primitive_desc_create_t)(
    void **primitive_desc, void *engine, const void *src_desc, const void *weights_desc,
    const void *bias_desc, const void *dst_desc, const void *attr);
typedef fnn_dnnl_status_t (*fnn_primitive_desc_query_t)(const void *primitive_desc, int what,
                                                         int index, void *result);
typedef const void *(*fnn_primitive_desc_query_md_t)(const void *primitive_desc, int what,
                                                     int index);
typedef fnn_dnnl_status_t (*fnn_primitive_desc_destroy_t)(void *primitive_desc);
typedef fnn_dnnl_status_t (*fnn_primitive_create_t)(void **primitive,
                                                     const void *primitive_desc);
typedef fnn_dnnl_status_t (*fnn_primitive_execute_t)(const void *primitive, void *stream,
                                                      int nargs,
                                                      const fnn_dnnl_exec_arg_t *args);
typedef fnn_dnnl_status_t (*fnn_memory_create_t)(void **memory, const void *memory_desc,
                                                  void *engine, void *handle);
typedef fnn_dnnl_status_t (*fnn_memory_set_data_handle_t)(void *memory, void *handle);
typedef const fnn_dnnl_version_t *(*fnn_version_t)(void);
typedef int (*fnn_get_effective_cpu_isa_t)(void);  /* dnnl_cpu_isa_t */
typedef const char *(*fnn_cpu_isa2str_t)(int);   /* dnnl_debug.h */

#ifdef _WIN32
#define FNN_HAVE_DLOPEN 0
#define RTLD_NOW 0
#define RTLD_LOCAL 0
static inline void *dlopen(const char *path, int flags) { (void)path; (void)flags; return NULL; }
static inline void *dlsym(void *handle, const char *name) { (void)handle; (void)name; return NULL; }
static inline const char *dlerror(void) { return "oneDNN is loaded on Linux only"; }
typedef struct { int unused; } pthread_mutex_t;
static inline int pthread_mutex_init(pthread_mutex_t *m, const void *a) { (void)m; (void)a; return 0; }
static inline int pthread_mutex_lock(pthread_mutex_t *m) { (void)m; return 0; }
static inline int pthread_mutex_trylock(pthread_mutex_t *m) { (void)m; return 0; }
static inline int pthread_mutex_unlock(pthread_mutex_t *m) { (void)m; return 0; }
#else
#define FNN_HAVE_DLOPEN 1
#include <dlfcn.h>
#include <pthread.h>
#endif

#endif
