// _cpu_harness.cpp -- runs the CUDA element update (radam_element.cuh) on the host.
//
// Built by the test suite with the system C++ compiler (see _cpu_harness.py), with
// -ffp-contract=off like the kernels' --fmad=false, and driven through ctypes: the
// tests compare its results with radam_ref.step for every variant, so the arithmetic
// the GPU kernels run is checked on machines without a GPU.
#include "radam_element.cuh"

template <typename T>
static void apply(long long n, T *p, const T *g, T *m, T *v, const int *flags,
                  const double *scalars) {
    const radam_flags f = {flags[0], flags[1], flags[2], flags[3], flags[4], flags[5],
                           flags[6]};
    // double -> T rounds to nearest, like the host's cast of each scalar.
    const radam_scalars<T> s = {
        (T)scalars[0], (T)scalars[1], (T)scalars[2],  (T)scalars[3],  (T)scalars[4],
        (T)scalars[5], (T)scalars[6], (T)scalars[7],  (T)scalars[8],  (T)scalars[9],
        (T)scalars[10], (T)scalars[11], (T)scalars[12]};
    for (long long i = 0; i < n; ++i) {
        T pi = p[i], mi = m[i], vi = v[i];
        radam_element<T>(f, s, pi, g[i], mi, vi);
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" {

// Number of scalars and flags the entry points expect (checked by the driver).
int radam_harness_n_scalars(void) { return 13; }
int radam_harness_n_flags(void) { return 7; }

void radam_harness_apply_f32(long long n, float *p, const float *g, float *m, float *v,
                             const int *flags, const double *scalars) {
    apply<float>(n, p, g, m, v, flags, scalars);
}

void radam_harness_apply_f64(long long n, double *p, const double *g, double *m, double *v,
                             const int *flags, const double *scalars) {
    apply<double>(n, p, g, m, v, flags, scalars);
}

void radam_harness_bf16_bits_rn(long long n, const float *x, unsigned short *out) {
    for (long long i = 0; i < n; ++i) out[i] = radam_bf16_bits_rn(x[i]);
}

}  // extern "C"
