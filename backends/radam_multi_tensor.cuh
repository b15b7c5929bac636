// radam_multi_tensor.cuh -- the one template every RAdam CUDA kernel is generated from.
//
// A kernel updates every tensor of one dtype group in a single launch (a multi-tensor
// launch: one pointer/size table instead of one launch per array).  The host passes
// one int64 device array holding two tables:
//   tensors[k] = {p, g, m, v addresses, number of elements}     k < n_tensors
//   chunks[c]  = {k, first element of the chunk}                  c < n_chunks
// Block b handles chunks b, b + gridDim.x, ...; a chunk is up to chunk_size
// consecutive elements of one tensor.  Each element goes through radam_element
// (radam_element.cuh) in the compute type; theta and g are converted from and to the
// storage type once.  The step scalars arrive as kernel arguments, computed on the
// host in float64 by radam_ref.schedule and rounded once to the compute type.
//
// _cuda_source.py prepends radam_element.cuh and appends, per (storage dtype,
// variant), one extern "C" __global__ wrapper named after the variant, e.g.
// radam_f16_adaptive_l2, which instantiates radam_multi_tensor<...> with the variant's
// flags as template arguments (so every untaken branch is compiled away).
#include "radam_element.cuh"

#ifndef RADAM_ILP
#define RADAM_ILP 4  // elements in flight per thread
#endif

// Storage <-> compute conversions.  float16 and bfloat16 are stored as raw 16-bit
// patterns and converted by single PTX instructions, so the generated source needs
// no CUDA header: NVRTC (CuPy) and nvcc compile the same text.
struct radam_storage_f32 {
    typedef float storage_t;
    typedef float compute_t;
    static __device__ __forceinline__ float load(float x) { return x; }
    static __device__ __forceinline__ float store(float x) { return x; }
};

struct radam_storage_f64 {
    typedef double storage_t;
    typedef double compute_t;
    static __device__ __forceinline__ double load(double x) { return x; }
    static __device__ __forceinline__ double store(double x) { return x; }
};

struct radam_storage_f16 {
    typedef unsigned short storage_t;
    typedef float compute_t;
    static __device__ __forceinline__ float load(unsigned short h) {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
        return f;
    }
    static __device__ __forceinline__ unsigned short store(float f) {
        unsigned short h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
        return h;
    }
};

struct radam_storage_bf16 {
    typedef unsigned short storage_t;
    typedef float compute_t;
    static __device__ __forceinline__ float load(unsigned short h) {
        return __uint_as_float(((unsigned int)h) << 16);
    }
    static __device__ __forceinline__ unsigned short store(float f) {
#if __CUDA_ARCH__ >= 800
        unsigned short h;
        asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
        return h;
#else
        return radam_bf16_bits_rn(f);
#endif
    }
};

template <class S, int UPDATE, int EPS_AFTER, int EPS_ROOT, int L2, int DECAY,
          int NESTEROV, int MAXIMIZE>
__device__ __forceinline__ void radam_multi_tensor(
        const long long *__restrict__ table, long long n_tensors, long long n_chunks,
        long long chunk_size, const radam_scalars<typename S::compute_t> s) {
    typedef typename S::storage_t storage_t;
    typedef typename S::compute_t compute_t;
    const radam_flags f = {UPDATE, EPS_AFTER, EPS_ROOT, L2, DECAY, NESTEROV, MAXIMIZE};
    // theta is read only when something uses it and written only when it changes.
    const bool writes_p = UPDATE != RADAM_MOMENTS_ONLY || DECAY;
    const bool reads_p = writes_p || L2;
    const long long *chunks = table + 5 * n_tensors;
    const long long stride = (long long)blockDim.x * RADAM_ILP;
    for (long long c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const long long *tensor = table + 5 * chunks[2 * c];
        storage_t *p = (storage_t *)tensor[0];
        const storage_t *g = (const storage_t *)tensor[1];
        compute_t *m = (compute_t *)tensor[2];
        compute_t *v = (compute_t *)tensor[3];
        const long long start = chunks[2 * c + 1];
        const long long end = start + chunk_size < tensor[4] ? start + chunk_size : tensor[4];
        for (long long first = start + threadIdx.x; first < end; first += stride) {
            compute_t rp[RADAM_ILP], rg[RADAM_ILP], rm[RADAM_ILP], rv[RADAM_ILP];
#pragma unroll
            for (int j = 0; j < RADAM_ILP; ++j) {
                const long long i = first + (long long)j * blockDim.x;
                if (i < end) {
                    rp[j] = reads_p ? S::load(p[i]) : compute_t(0);
                    rg[j] = S::load(g[i]);
                    rm[j] = m[i];
                    rv[j] = v[i];
                }
            }
#pragma unroll
            for (int j = 0; j < RADAM_ILP; ++j) {
                const long long i = first + (long long)j * blockDim.x;
                if (i < end) {
                    radam_element<compute_t>(f, s, rp[j], rg[j], rm[j], rv[j]);
                    if (writes_p) p[i] = S::store(rp[j]);
                    m[i] = rm[j];
                    v[i] = rv[j];
                }
            }
        }
    }
}
