/* Shared C helpers for fastnn's Cython kernels.
 *
 * - An OpenMP shim, so that the kernels build (serially) with a compiler that has no OpenMP.
 * - The size threshold below which a kernel stays on one thread.
 * - float32 exp/tanh/sigmoid/expm1/log1p written as branch-free arithmetic so that GCC/Clang
 *   vectorize the loops that call them (libm's scalar calls block vectorization). They are used
 *   only for arguments <= 0 in exp (every caller needs exp(-|z|)), which keeps the range reduction
 *   simple. Accuracy is a few ulp (tanh: 5). float64 kernels call libm, to agree with NumPy to
 *   ~1e-12.
 * - The losses' row loops (softmax's max and sum, the hinge losses, binary logistic) over 8
 *   independent lanes, branch-free: a single running sum or max, or an `if` per element, kept
 *   them scalar or mispredicting.
 */
#ifndef FASTNN_KERNELS_H
#define FASTNN_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define FNN_OPENMP 1
#else
#define FNN_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }
static inline int omp_get_num_procs(void) { return 1; }
#endif

/* Elementwise work (elements x cost per element) below which a kernel runs on one thread. With
 * OpenMP's passive wait policy (see _kernels/__init__.py) waking a worker costs tens of
 * microseconds, and on the 2-core machines we measure on, the bias+activation passes ran no
 * faster on 2 threads than on 1 up to (1024, 4096) (bench/test_bench_kernels.py; README). */
#define FNN_DEFAULT_PARALLEL_MIN_WORK (1L << 21)

/* Below the threshold a kernel runs a plain loop, not an OpenMP region with if(0): libgomp still
 * sets up a one-thread team for such a region, ~0.3 us each here (gcc 12), which a training step
 * of a small model paid a dozen times. So each loop is written twice, `if threaded: prange ...
 * else: range ...`, both calling the same per-row (or per-chunk) function. */

/* The threshold, read once from FASTNN_PARALLEL_MIN_WORK when set (the tests lower it so that
 * their shapes exercise the threaded paths). Each compiled module keeps its own copy. */
static inline long fnn_parallel_min_work(void) {
    static long value = 0;
    if (value == 0) {
        const char* text = getenv("FASTNN_PARALLEL_MIN_WORK");
        long parsed = text ? atol(text) : 0;
        value = parsed > 0 ? parsed : FNN_DEFAULT_PARALLEL_MIN_WORK;
    }
    return value;
}
#define FNN_PARALLEL_MIN_WORK fnn_parallel_min_work()

static inline float fnn_bits_to_float(int32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint32_t fnn_float_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* cond ? a : b as a bitwise blend. A plain ?: whose one arm calls fnn_expf_nonpos lets GCC sink the
 * arm's float-to-int conversion into a branch, which it then cannot vectorize. */
static inline float fnn_select(int cond, float a, float b) {
    uint32_t mask = 0u - (uint32_t)(cond != 0);
    return fnn_bits_to_float((int32_t)((fnn_float_to_bits(a) & mask) | (fnn_float_to_bits(b) & ~mask)));
}

static inline double fnn_select_d(int cond, double a, double b) {
    uint64_t mask = 0u - (uint64_t)(cond != 0), ab, bb;
    double r;
    memcpy(&ab, &a, sizeof ab);
    memcpy(&bb, &b, sizeof bb);
    ab = (ab & mask) | (bb & ~mask);
    memcpy(&r, &ab, sizeof r);
    return r;
}

/* exp(x) for x <= 0 (Cephes-style range reduction and degree-6 polynomial). Results below
 * FLT_MIN (x < -87.3) are flushed to 0: the clamp gives n = -127, whose scale bits are 0. */
static inline float fnn_expf_nonpos(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    /* xc = max(x, -88) as an unsigned min on the bits (for x <= 0, larger bits = more negative):
     * a float compare here lets GCC split the loop on the constant branch and stop vectorizing. */
    uint32_t xb = fnn_float_to_bits(x), lim = 0xC2B00000u; /* -88.0f */
    float xc = fnn_bits_to_float((int32_t)(xb < lim ? xb : lim));
    /* Round xc*log2e (<= 0) to nearest by truncation; floorf would block vectorization. */
    float n = (float)(int32_t)(xc * log2e - 0.5f);
    float r = xc - n * ln2_hi;
    r = r - n * ln2_lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float scale = fnn_bits_to_float(((int32_t)n + 127) << 23);
    return p * scale;
}

/* The sum of 8 lane accumulators, pairwise (the loops below keep 8 independent partial sums, so
 * that the compiler can put them in vectors). */
static inline double fnn_sum8(const double* t) {
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

/* The maximum of s[0..c) and the float64 sum of d[0..c) for c >= 1, over 8 independent lanes:
 * written as one running value, each reduction is a chain of dependent operations (a compare or
 * an add per element, each waiting for the last) that the compiler may not reorder into vectors
 * without -ffast-math; a softmax row of 1000 classes spent most of its time there. A NaN after
 * s[0] is skipped by the max, as in a sequential `if (s[j] > m) m = s[j]` (the row's exp and sum
 * then carry it into the loss). */
#define FNN_ROW_REDUCTIONS(T, SUFFIX)                                                              \
static inline T fnn_row_max_##SUFFIX(const T* s, long c) {                                         \
    T m[8];                                                                                        \
    long j, k;                                                                                     \
    for (k = 0; k < 8; k++) m[k] = s[0];                                                           \
    for (j = 0; j + 8 <= c; j += 8)                                                                \
        for (k = 0; k < 8; k++) m[k] = s[j + k] > m[k] ? s[j + k] : m[k];                          \
    for (; j < c; j++) m[0] = s[j] > m[0] ? s[j] : m[0];                                           \
    for (k = 1; k < 8; k++) m[0] = m[k] > m[0] ? m[k] : m[0];                                      \
    return m[0];                                                                                   \
}                                                                                                  \
static inline double fnn_row_sum_##SUFFIX(const T* d, long c) {                                    \
    double t[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                        \
    long j, k;                                                                                     \
    for (j = 0; j + 8 <= c; j += 8)                                                                \
        for (k = 0; k < 8; k++) t[k] += d[j + k];                                                  \
    for (; j < c; j++) t[0] += d[j];                                                               \
    return fnn_sum8(t);                                                                            \
}
FNN_ROW_REDUCTIONS(float, f)
FNN_ROW_REDUCTIONS(double, d)
#undef FNN_ROW_REDUCTIONS

/* One row of the multiclass hinge loss (see loss.pyx): returns the sum over j != label of
 * max(0, s_j - s_label + 1) (margins that are NaN count as 0, as in the twin) and writes its
 * gradient times inv_n to d. Branch-free over 8 lanes, with bitwise selects: with an `if` per
 * element, random margins made a row of 1000 classes a run of branch mispredictions (for rows of
 * a few classes the `if` loop is faster: loss.pyx keeps it there). The label's own margin (1, or
 * NaN with a NaN score) goes through the same rule and is taken out after. */
#define FNN_HINGE_ROW(T, SUFFIX, SELECT)                                                           \
static inline double fnn_hinge_row_##SUFFIX(const T* s, T* d, long c, long label, double inv_n) { \
    double total[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sum;                                               \
    T active[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                        \
    const T correct = s[label], step = (T)inv_n;                                                   \
    const T own = correct - correct + 1; /* (not s[label] later: d may be s) */                    \
    long j, k;                                                                                     \
    T margin, count;                                                                               \
    for (j = 0; j + 8 <= c; j += 8)                                                                \
        for (k = 0; k < 8; k++) {                                                                  \
            margin = s[j + k] - correct + 1;                                                       \
            total[k] += SELECT(margin > 0, margin, 0);                                             \
            active[k] += SELECT(margin > 0, 1, 0);                                                 \
            d[j + k] = SELECT(margin > 0, step, 0);                                                \
        }                                                                                          \
    for (; j < c; j++) {                                                                           \
        margin = s[j] - correct + 1;                                                               \
        total[0] += SELECT(margin > 0, margin, 0);                                                 \
        active[0] += SELECT(margin > 0, 1, 0);                                                     \
        d[j] = SELECT(margin > 0, step, 0);                                                        \
    }                                                                                              \
    count = ((active[0] + active[1]) + (active[2] + active[3]))                                   \
            + ((active[4] + active[5]) + (active[6] + active[7])) - SELECT(own > 0, 1, 0);         \
    sum = fnn_sum8(total) - SELECT(own > 0, own, 0);                                               \
    d[label] = (T)(-count * inv_n);                                                                \
    return sum;                                                                                    \
}
FNN_HINGE_ROW(float, f, fnn_select)
FNN_HINGE_ROW(double, d, fnn_select_d)
#undef FNN_HINGE_ROW

/* The binary hinge loss summed over n scores, max(0, 1 - t s) with targets t = +-1 (a NaN margin
 * makes the sum NaN, as np.maximum does in the twin), d getting (-t if the margin is positive,
 * else 0) * inv_n. Branch-free over 8 lanes: with an `if`, scores of random sign mispredicted. */
#define FNN_BINARY_HINGE(T, SUFFIX)                                                                \
static inline double fnn_binary_hinge_##SUFFIX(const T* s, const double* t, T* d, long n,         \
                                                double inv_n) {                                    \
    double total[8] = {0, 0, 0, 0, 0, 0, 0, 0}, e;                                                 \
    long i, k;                                                                                     \
    for (i = 0; i + 8 <= n; i += 8)                                                                \
        for (k = 0; k < 8; k++) {                                                                  \
            e = 1 - t[i + k] * (double)s[i + k];                                                   \
            total[k] += fnn_select_d((e > 0) | (e != e), e, 0);                                    \
            d[i + k] = (T)fnn_select_d(e > 0, -t[i + k] * inv_n, 0);                               \
        }                                                                                          \
    for (; i < n; i++) {                                                                           \
        e = 1 - t[i] * (double)s[i];                                                               \
        total[0] += fnn_select_d((e > 0) | (e != e), e, 0);                                        \
        d[i] = (T)fnn_select_d(e > 0, -t[i] * inv_n, 0);                                           \
    }                                                                                              \
    return fnn_sum8(total);                                                                        \
}
FNN_BINARY_HINGE(float, f)
FNN_BINARY_HINGE(double, d)
#undef FNN_BINARY_HINGE

/* 1 / (1 + exp(-z)) without overflow for any finite z. */
static inline float fnn_sigmoidf(float z) {
    float e = fnn_expf_nonpos(-fabsf(z));
    float s = 1.0f / (1.0f + e);
    return fnn_select(z == z, z >= 0.0f ? s : e * s, z); /* NaN stays NaN */
}

/* tanh(z) as z * P(z^2) / Q(z^2) on z clamped to [-7.9, 7.9]: about half the work of an exp-based
 * formula (no range reduction, one division). The coefficients minimize the maximum relative
 * error on (0, 7.9] (least squares reweighted towards the worst points, fitted in float64, then
 * rounded to float32); evaluated in float32 the error is at most 3.1e-7 (5 ulp), the function is
 * odd, and |tanh| never exceeds 1. The rational function alone would saturate at 0.99999976
 * (tanh(7.9) = 1 - 2.8e-7), leaving 1 - tanh^2, the gradient, nonzero however large z: from
 * 9.010914, the first float32 whose tanh rounds to 1, it returns +-1 exactly, as NumPy does. */
static inline float fnn_tanhf(float z) {
    const float lim = 7.9f;
    float x = z < -lim ? -lim : (z > lim ? lim : z); /* NaN stays NaN */
    float s = x * x;
    float p = 1.542778882424045e-08f;
    p = p * s + 2.202311225119047e-05f;
    p = p * s + 3.578983712941408e-03f;
    p = p * s + 1.3450613617897034e-01f;
    p = p * s + 1.0f;
    float q = 8.598705107942806e-07f;
    q = q * s + 3.423637244850397e-04f;
    q = q * s + 2.6192206889390945e-02f;
    q = q * s + 4.6783941984176636e-01f;
    q = q * s + 1.0f;
    return fnn_select(fabsf(z) >= 9.010914f, copysignf(1.0f, x), x * p / q);
}

/* log(1 + e) for 0 <= e <= 1, as 2 atanh(z) with z = e / (2 + e) <= 1/3 (odd series to z^13;
 * the next term is below 1e-8 of the result), so no cancellation near e = 0. */
static inline float fnn_log1pf_unit(float e) {
    float z = e / (2.0f + e), z2 = z * z;
    float p = 2.0f / 13.0f;
    p = p * z2 + 2.0f / 11.0f;
    p = p * z2 + 2.0f / 9.0f;
    p = p * z2 + 2.0f / 7.0f;
    p = p * z2 + 2.0f / 5.0f;
    p = p * z2 + 2.0f / 3.0f;
    p = p * z2 + 2.0f;
    return p * z;
}

/* One sample of the binary logistic loss: returns max(x, 0) - t x + log1p(exp(-|x|)) and writes
 * (sigmoid(x) - t) * inv_n to *d. */
static inline float fnn_logistic_f(float x, float t, float* d, float inv_n) {
    float e = fnn_expf_nonpos(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    *d = (fnn_select(x >= 0.0f, r, e * r) - t) * inv_n;
    return fnn_select(x > 0.0f, x, 0.0f) - t * x + fnn_log1pf_unit(e);
}

/* The binary logistic loss summed over n float32 scores (float64 sum over 8 lanes, as in
 * fnn_row_sum), d getting its gradient. */
static inline double fnn_binary_logistic_f(const float* s, const double* t, float* d, long n,
                                           float inv_n) {
    double total[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float loss[8];
    long i, k;
    for (i = 0; i + 8 <= n; i += 8) {
        for (k = 0; k < 8; k++) loss[k] = fnn_logistic_f(s[i + k], (float)t[i + k], d + i + k, inv_n);
        for (k = 0; k < 8; k++) total[k] += loss[k];
    }
    for (; i < n; i++) total[0] += fnn_logistic_f(s[i], (float)t[i], d + i, inv_n);
    return fnn_sum8(total);
}

/* exp(z) - 1 for z <= 0: a Taylor polynomial near zero (no cancellation), exp(z) - 1 beyond. */
static inline float fnn_expm1f_nonpos(float z) {
    float t = 1.0f / 5040.0f;
    t = t * z + 1.0f / 720.0f;
    t = t * z + 1.0f / 120.0f;
    t = t * z + 1.0f / 24.0f;
    t = t * z + 1.0f / 6.0f;
    t = t * z + 0.5f;
    float small = (t * z + 1.0f) * z;
    float big = fnn_expf_nonpos(z) - 1.0f;
    return fnn_select(z > -0.5f, small, big);
}

/* ELU: z for z > 0, alpha * (exp(z) - 1) otherwise. */
static inline float fnn_eluf(float z, float alpha) {
    float negative = alpha * fnn_expm1f_nonpos(fnn_select(z < 0.0f, z, 0.0f));
    return fnn_select(z <= 0.0f, negative, z); /* NaN stays NaN */
}

static inline double fnn_elu(double z, double alpha) {
    return z > 0.0 ? z : alpha * expm1(z);
}

static inline double fnn_sigmoid(double z) {
    double e = exp(-fabs(z));
    double s = 1.0 / (1.0 + e);
    return z >= 0.0 ? s : e * s;
}

#endif
