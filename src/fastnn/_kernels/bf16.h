/* bfloat16 <-> float32 conversions on the bit pattern (bf16.pyx and the kernels that cimport
 * bf16.pxd). A bfloat16 is the top 16 bits of a float32; NumPy has no such dtype, so fastnn
 * stores one as a uint16.
 *
 * - Rounding is to nearest, ties to even, by integer arithmetic: add 0x7FFF plus the lowest kept
 *   bit, keep the top half. Denormals round like any other value (no flush to zero), and a value
 *   past the largest bfloat16 (0x7F7F, i.e. >= 0x1.FFp127 rounded up) carries into the exponent
 *   and becomes inf, as in PyTorch's conversion.
 * - A NaN keeps its sign and top payload bits with the quiet bit set (its rounded bits could
 *   carry into inf), as the AVX512-BF16 instruction does. PyTorch's NaN bits depend on its code
 *   path (0xFFFF from its AVX2 loop, 0x7FC0 from its scalar one); both are NaN too.
 * - Everything is integer ops and a bitwise select, so loops over these vectorize. */
#ifndef FASTNN_BF16_H
#define FASTNN_BF16_H

#include <stdint.h>
#include <string.h>

/* f's bits with the rounding above applied to the top half (the low half is garbage); all
 * 32-bit lanes, so the compiler need not narrow the select to 16 bits. */
static inline uint32_t fnn_bf16_rounded_u32(float f) {
    uint32_t u, rounded, quiet, nan;
    memcpy(&u, &f, sizeof u);
    rounded = u + 0x7FFFu + ((u >> 16) & 1u);
    quiet = u | 0x00400000u;
    /* (a signed compare: both sides are below 2**31, and AVX2 has no unsigned one) */
    nan = 0u - (uint32_t)((int32_t)(u & 0x7FFFFFFFu) > (int32_t)0x7F800000);
    return (quiet & nan) | (rounded & ~nan);
}

/* f rounded to the nearest bfloat16, as its bit pattern. */
static inline uint16_t fnn_bf16_bits(float f) {
    return (uint16_t)(fnn_bf16_rounded_u32(f) >> 16);
}

static inline float fnn_bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f rounded to the nearest bfloat16, as a float32. */
static inline float fnn_bf16_round(float f) {
    uint32_t u = fnn_bf16_rounded_u32(f) & 0xFFFF0000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

#endif
