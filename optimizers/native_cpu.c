/* CPU kernels of the fused optimizers (Stable-SPAM, SPAM): the memory passes of one step, over many tensors.
 *
 * Built and loaded at run time by optimizers/native.py (plain C, gcc, no torch headers; called through ctypes).
 * Each entry point takes n tensors as arrays of data pointers and element counts, and per-tensor scalars as
 * float arrays. Parameters and gradients are fp32 (dtype code 0) or bf16 (code 1), per tensor; the moments are
 * always fp32. One OpenMP parallel region per call: a large tensor is split into one contiguous range per
 * thread, a small one goes whole to one thread, so there is one barrier per call, not one per tensor. The
 * OpenMP runtime is the one torch has loaded (same soname), so these threads are torch's threads.
 *
 *   ss_abs_max      max|g| per tensor                                          (reads g)
 *   ss_clip_norm    ||x||, x = g * (|g| > thr ? w_clip : w_keep)                (reads g)
 *   adam_step       Adam on u = clip(g) * factor, clip inline, p.grad left as it is
 *                   (reads p, g, m, v; writes p, m, v)
 *
 * Element-wise arithmetic rounds as the multi-tensor reference path's torch operations do (compiled with
 * -ffp-contract=off; the fused multiply-adds torch's kernels use are written out), so the results are the
 * reference's bit for bit; the norm is summed in double (as the reference's is), in a fixed order for a
 * given number of threads, and rounded once.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

enum { F32 = 0, BF16 = 1 };
enum { CLIP_NONE = 0, CLIP_ADACLIP = 1, CLIP_SPIKE = 2 };

/* Tensors below this many elements go whole to one thread. */
#define SPLIT_MIN 32768

static inline float bf16_load(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, as c10::BFloat16 does (a NaN becomes 0x7FC0). */
static inline uint16_t bf16_store(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (f != f) return 0x7FC0;
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* The range [lo, hi) of tensor i (numel n) that thread tid of nt handles. */
static inline void span(int64_t n, int i, int tid, int nt, int64_t *lo, int64_t *hi) {
    if (n < SPLIT_MIN || nt == 1) {
        *lo = 0;
        *hi = (i % nt == tid) ? n : 0;
        return;
    }
    int64_t per = ((n + nt - 1) / nt + 15) & ~(int64_t)15;
    int64_t a = per * tid;
    *lo = a < n ? a : n;
    *hi = a + per < n ? a + per : n;
}

/* ---- max|g| ----------------------------------------------------------------------------------------
 *
 * A reduction reads its range as STREAMS sub-ranges in lockstep, each with its own vector accumulator (GCC
 * vector extensions): a core then keeps several memory streams in flight (a single read stream measured ~1.8x
 * slower here) and is not held to one dependent vector operation per instruction latency. */

#define W 16         /* floats per vector */
#define STREAMS 4    /* a reduction reads its range as this many interleaved streams */

typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));
typedef uint32_t vu __attribute__((vector_size(W * sizeof(uint32_t))));
typedef uint16_t vh __attribute__((vector_size(W * sizeof(uint16_t))));

static inline vf vload_f32(const float *p) {
    vf x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline vf vload_bf16(const uint16_t *p) {
    vh h;
    memcpy(&h, p, sizeof h);
    vu u = __builtin_convertvector(h, vu) << 16;
    return (vf)u;
}

static inline vf vload(const void *g, int dtype, int64_t j) {
    return dtype == BF16 ? vload_bf16((const uint16_t *)g + j) : vload_f32((const float *)g + j);
}

static inline float sload(const void *g, int dtype, int64_t j) {
    return dtype == BF16 ? bf16_load(((const uint16_t *)g)[j]) : ((const float *)g)[j];
}

static inline vf vabs(vf x) { return (vf)((vi)x & 0x7FFFFFFF); }

static inline vf vselect(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/* max|g[lo:hi]| (NaN if any entry is NaN). */
static inline float abs_max_range(const void *g, int dtype, int64_t lo, int64_t hi) {
    vf acc[STREAMS] = {0};
    vi nan = {0};
    int64_t len = (hi - lo) / (W * STREAMS) * W;        /* per stream, a multiple of W */
    for (int64_t j = lo; j < lo + len; j += W) {
#pragma GCC unroll 8
        for (int k = 0; k < STREAMS; k++) {
            vf a = vabs(vload(g, dtype, j + k * len));
            acc[k] = vselect(a > acc[k], a, acc[k]);
            nan |= a != a;
        }
    }
    float m = 0.0f;
    int any_nan = 0;
    for (int k = 0; k < STREAMS; k++)
        for (int l = 0; l < W; l++) {
            m = acc[k][l] > m ? acc[k][l] : m;
            any_nan |= nan[l];
        }
    for (int64_t j = lo + STREAMS * len; j < hi; j++) {
        float a = fabsf(sload(g, dtype, j));
        m = a > m ? a : m;
        any_nan |= a != a;
    }
    return any_nan ? NAN : m;
}

static float abs_max_f32(const void *g, int64_t lo, int64_t hi) { return abs_max_range(g, F32, lo, hi); }
static float abs_max_bf16(const void *g, int64_t lo, int64_t hi) { return abs_max_range(g, BF16, lo, hi); }

void ss_abs_max(int n, void *const *g, const int64_t *numel, const int32_t *dtype, float *out, int nt) {
    float *part = malloc(sizeof(float) * (size_t)n * (size_t)nt);
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        for (int i = 0; i < n; i++) {
            int64_t lo, hi;
            span(numel[i], i, tid, team, &lo, &hi);
            part[(size_t)i * nt + tid] = dtype[i] == BF16 ? abs_max_bf16(g[i], lo, hi) : abs_max_f32(g[i], lo, hi);
        }
#pragma omp barrier
#pragma omp for
        for (int i = 0; i < n; i++) {
            float m = 0.0f;
            for (int t = 0; t < team; t++) {
                float a = part[(size_t)i * nt + t];
                m = (a > m || a != a) ? a : m;
            }
            out[i] = m;
        }
    }
    free(part);
}

/* ---- norm of the clipped, normalised gradient ------------------------------------------------------ */

/* Sum of x^2 (each square and the sum in double, as the reference's double norm takes them) and the number of
 * clipped entries over g[lo:hi], x = g * (|g| > thr ? w_clip : w_keep). */
typedef float vf8 __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t vi8 __attribute__((vector_size(8 * sizeof(int32_t))));
typedef double vd8 __attribute__((vector_size(8 * sizeof(double))));

static inline vf8 vload8(const void *g, int dtype, int64_t j) {
    if (dtype == BF16) {
        uint16_t h[8] __attribute__((aligned(16)));
        memcpy(h, (const uint16_t *)g + j, sizeof h);
        vi8 u = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]};
        return (vf8)(u << 16);
    }
    vf8 x;
    memcpy(&x, (const float *)g + j, sizeof x);
    return x;
}

static inline vf8 broadcast8(float x) { return (vf8){x, x, x, x, x, x, x, x}; }

#ifdef __AVX512F__
#include <immintrin.h>
/* GCC lowers the generic conversion to two halves; AVX-512 has it in one instruction. */
static inline vd8 widen8(vf8 x) { return (vd8)_mm512_cvtps_pd((__m256)x); }
#else
static inline vd8 widen8(vf8 x) { return __builtin_convertvector(x, vd8); }
#endif

/* Contracting acc + x * x into a fused multiply-add changes nothing here: the square of a float is exact in
 * double. */
__attribute__((optimize("fp-contract=fast")))
static inline void clip_sumsq_range(const void *g, int dtype, int64_t lo, int64_t hi, float thr, float w_clip,
                                    float w_keep, int counting, double *sum, double *count) {
    vd8 acc[STREAMS] = {0};
    vi8 hits = {0};
    const vf8 thr8 = broadcast8(thr), clip8 = broadcast8(w_clip), keep8 = broadcast8(w_keep);
    const vi8 abs_mask = (vi8){0} + 0x7FFFFFFF;
    int64_t len = (hi - lo) / (8 * STREAMS) * 8;        /* per stream, a multiple of 8 */
    for (int64_t j = lo; j < lo + len; j += 8) {
#pragma GCC unroll 8
        for (int k = 0; k < STREAMS; k++) {
            vf8 gj = vload8(g, dtype, j + k * len);
            vi8 hit = (vf8)((vi8)gj & abs_mask) > thr8;
            vf8 x = gj * (vf8)(((vi8)clip8 & hit) | ((vi8)keep8 & ~hit));
            vd8 xd = widen8(x);
            acc[k] += xd * xd;
            if (counting) hits -= hit;
        }
    }
    double s = 0.0, c = 0.0;
    for (int k = 0; k < STREAMS; k++)
        for (int l = 0; l < 8; l++) s += acc[k][l];
    for (int l = 0; l < 8; l++) c += hits[l];
    for (int64_t j = lo + STREAMS * len; j < hi; j++) {
        float gj = sload(g, dtype, j);
        int hit = fabsf(gj) > thr;
        float x = gj * (hit ? w_clip : w_keep);
        s += (double)x * (double)x;
        c += hit;
    }
    *sum = s;
    *count = c;
}

static void clip_sumsq(int dtype, int counting, const void *g, int64_t lo, int64_t hi, float thr, float w_clip,
                       float w_keep, double *sum, double *count) {
    if (dtype == BF16) {
        if (counting) clip_sumsq_range(g, BF16, lo, hi, thr, w_clip, w_keep, 1, sum, count);
        else clip_sumsq_range(g, BF16, lo, hi, thr, w_clip, w_keep, 0, sum, count);
    } else {
        if (counting) clip_sumsq_range(g, F32, lo, hi, thr, w_clip, w_keep, 1, sum, count);
        else clip_sumsq_range(g, F32, lo, hi, thr, w_clip, w_keep, 0, sum, count);
    }
}

void ss_clip_norm(int n, void *const *g, const int64_t *numel, const int32_t *dtype, const float *thr,
                  const float *w_clip, const float *w_keep, float *norm, float *count, int nt) {
    double *part = malloc(sizeof(double) * 2 * (size_t)n * (size_t)nt);
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        for (int i = 0; i < n; i++) {
            int64_t lo, hi;
            span(numel[i], i, tid, team, &lo, &hi);
            double *s = part + 2 * ((size_t)i * nt + tid);
            clip_sumsq(dtype[i], count != NULL, g[i], lo, hi, thr[i], w_clip[i], w_keep[i], s, s + 1);
        }
#pragma omp barrier
#pragma omp for
        for (int i = 0; i < n; i++) {
            double s = 0.0, c = 0.0;
            for (int t = 0; t < team; t++) {
                s += part[2 * ((size_t)i * nt + t)];
                c += part[2 * ((size_t)i * nt + t) + 1];
            }
            norm[i] = (float)sqrt(s);
            if (count) count[i] = (float)c;
        }
    }
    free(part);
}

/* ---- Adam with the gradient transform inline ---------------------------------------------------------
 *
 * Per element, with the roundings of the reference's torch operations (torch's CPU kernels fuse the
 * multiply-adds of lerp and addcmul, not that of addcdiv):
 *   u = (g * (|g| > thr ? w_clip : w_keep)) * factor               (CLIP_ADACLIP; Stable-SPAM)
 *   u = clamp(g, -sqrt(v * theta), sqrt(v * theta))                (CLIP_SPIKE; SPAM, v before this step)
 *   p = p * pre_decay
 *   m = fma(1 - beta1, u - m, m)                                   (torch.lerp, weight < 0.5)
 *   v = fma((1 - beta2) * u, u, v * beta2)                         (mul_, addcmul_)
 *   p = p + (step_size * m) / (sqrt(v) + eps)                      (addcdiv_)
 *   p = p * post_decay
 * A bf16 parameter is rounded after each of its updates, as the reference's separate operations round it.
 */

typedef struct {
    float thr, w_clip, w_keep, factor, theta, step_size, eps, w1, beta2, one_minus_beta2, pre, post;
} AdamArgs;

static inline float lerp_(float a, float b, float w) {
    /* torch's vectorised lerp: fma(w, b - a, a) for w < 0.5, else fma(w - 1, b - a, b) */
    return w < 0.5f ? fmaf(w, b - a, a) : fmaf(w - 1.0f, b - a, b);
}

static inline float transform(float gj, float vj, int mode, const AdamArgs *a) {
    if (mode == CLIP_ADACLIP) {
        float x = gj * (fabsf(gj) > a->thr ? a->w_clip : a->w_keep);
        return x * a->factor;
    }
    if (mode == CLIP_SPIKE) {
        float bound = sqrtf(vj * a->theta);
        return gj > bound ? bound : (gj < -bound ? -bound : gj);
    }
    return gj;
}

static inline void adam_f32(float *p, const float *g, float *m, float *v, int64_t lo, int64_t hi, int mode,
                            int decay_pre, int decay_post, const AdamArgs *a) {
#pragma omp simd
    for (int64_t j = lo; j < hi; j++) {
        float u = transform(g[j], v[j], mode, a);
        float mj = lerp_(m[j], u, a->w1);
        float vj = fmaf(a->one_minus_beta2 * u, u, v[j] * a->beta2);
        float pj = p[j];
        if (decay_pre) pj = pj * a->pre;
        pj = pj + a->step_size * mj / (sqrtf(vj) + a->eps);
        if (decay_post) pj = pj * a->post;
        m[j] = mj;
        v[j] = vj;
        p[j] = pj;
    }
}

static inline void adam_bf16(uint16_t *p, const uint16_t *g, float *m, float *v, int64_t lo, int64_t hi,
                             int mode, int decay_pre, int decay_post, const AdamArgs *a) {
#pragma omp simd
    for (int64_t j = lo; j < hi; j++) {
        float u = transform(bf16_load(g[j]), v[j], mode, a);
        float mj = lerp_(m[j], u, a->w1);
        float vj = fmaf(a->one_minus_beta2 * u, u, v[j] * a->beta2);
        float pj = bf16_load(p[j]);
        if (decay_pre) pj = bf16_load(bf16_store(pj * a->pre));
        pj = pj + a->step_size * mj / (sqrtf(vj) + a->eps);
        if (decay_post) pj = bf16_load(bf16_store(pj)) * a->post;
        m[j] = mj;
        v[j] = vj;
        p[j] = bf16_store(pj);
    }
}

/* Specialised on (mode, pre, post) so the loops carry no branches on them. */
static void adam_range(int dtype, void *p, const void *g, float *m, float *v, int64_t lo, int64_t hi, int mode,
                       int pre, int post, const AdamArgs *a) {
#define CASE(MODE, PRE, POST)                                                                  \
    if (mode == MODE && pre == PRE && post == POST) {                                          \
        if (dtype == BF16) adam_bf16(p, g, m, v, lo, hi, MODE, PRE, POST, a);                  \
        else adam_f32(p, g, m, v, lo, hi, MODE, PRE, POST, a);                                 \
        return;                                                                                \
    }
#define CASES(MODE) CASE(MODE, 0, 0) CASE(MODE, 1, 0) CASE(MODE, 0, 1) CASE(MODE, 1, 1)
    CASES(CLIP_NONE)
    CASES(CLIP_ADACLIP)
    CASES(CLIP_SPIKE)
#undef CASES
#undef CASE
}

/* mode: CLIP_*; thr/w_clip/w_keep/factor: per tensor (CLIP_ADACLIP, else NULL); step_size (the signed
 * multiplier of m / (sqrt(v) + eps)) and eps: per tensor; w1 = 1 - beta1 and w2 = 1 - beta2 (rounded from
 * double, as the reference's scalars are); pre/post: the weight-decay multipliers (1: none). */
void adam_step(int n, void *const *p, void *const *g, float *const *m, float *const *v, const int64_t *numel,
               const int32_t *dtype, int mode, const float *thr, const float *w_clip, const float *w_keep,
               const float *factor, float theta, const float *step_size, const float *eps, float w1,
               float beta2, float w2, float pre, float post, int nt) {
    int decay_pre = pre != 1.0f, decay_post = post != 1.0f;
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        for (int i = 0; i < n; i++) {
            int64_t lo, hi;
            span(numel[i], i, tid, team, &lo, &hi);
            if (lo >= hi) continue;
            AdamArgs a = {0};
            if (mode == CLIP_ADACLIP) {
                a.thr = thr[i];
                a.w_clip = w_clip[i];
                a.w_keep = w_keep[i];
                a.factor = factor[i];
            }
            a.theta = theta;
            a.step_size = step_size[i];
            a.eps = eps[i];
            a.w1 = w1;
            a.beta2 = beta2;
            a.one_minus_beta2 = w2;
            a.pre = pre;
            a.post = post;
            adam_range(dtype[i], p[i], g[i], m[i], v[i], lo, hi, mode, decay_pre, decay_post, &a);
        }
    }
}
