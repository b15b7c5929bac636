// radam_element.cuh -- the per-element RAdam update (Liu et al. 2020, Algorithm 2).
//
// One function, radam_element<T>, updates one parameter theta, its first moment m and
// its second moment v from one gradient g.  It is compiled three ways:
//   * by NVRTC/nvcc inside the multi-tensor CUDA kernels (radam_multi_tensor.cuh),
//   * by the host C++ compiler into the test harness (_cpu_harness.cpp), which the
//     test suite compares with radam_ref.step on every variant,
//   * and it is mirrored line by line, in Python, by _element in _numba_kernels.py.
//
// Everything that depends only on the step number t is computed on the host, in
// float64, from radam_ref.schedule (see _element.py) and arrives in radam_scalars,
// already rounded once to the compute type T.  The flags are uniform over a step.
//
// Numerics: the operations below are exactly those of radam_ref.step, in the same
// order, each rounded to T.  Build without contraction of a*b+c into FMA
// (nvcc/NVRTC --fmad=false, gcc -ffp-contract=off); division and square root are
// IEEE round-to-nearest (radam_sqrt uses the _rn intrinsics on the device).
#ifndef RADAM_ELEMENT_CUH
#define RADAM_ELEMENT_CUH

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define RADAM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define RADAM_HOST_DEVICE static inline
#endif

// Which update moves theta this step (uniform over elements).
enum radam_update {
    RADAM_MOMENTS_ONLY = 0,  // theta unchanged (before_rectification == "none")
    RADAM_MOMENTUM = 1,      // SGD with bias-corrected momentum (Alg. 2, line 14)
    RADAM_ADAPTIVE = 2       // rectified adaptive update (Alg. 2, lines 10-12)
};

// Decoupled weight decay this step (section 5), by RAdamConfig.decay_form.
enum radam_decay {
    RADAM_DECAY_NONE = 0,
    RADAM_DECAY_SUBTRACT = 1,  // theta <- theta - (lr * lambda) * theta  (decay_factor = lr*lambda)
    RADAM_DECAY_MULTIPLY = 2   // theta <- theta * (1 - lr * lambda)      (decay_factor = 1 - lr*lambda)
};

struct radam_flags {
    int update;     // enum radam_update
    int eps_after;  // eps added after bias correction (optax, TF-Addons)
    int eps_root;   // eps_root != 0: added inside the square root
    int l2;         // g <- g + lambda * theta
    int decay;      // enum radam_decay
    int nesterov;   // optax's Nesterov m_hat
    int maximize;   // g <- -g
};

template <typename T>
struct radam_scalars {
    T beta1, one_minus_beta1;        // beta1, 1 - beta1
    T beta2, one_minus_beta2;        // beta2, 1 - beta2
    T weight_decay;                  // lambda (l2)
    T decay_factor;                  // lr * lambda (subtract) or 1 - lr * lambda (multiply)
    T bias_correction1;              // 1 - beta1^t
    T bias_correction1_next;         // 1 - beta1^(t+1) (nesterov)
    T sqrt_bias_correction2;         // sqrt(1 - beta2^t), rounded once from float64
    T bias_correction2;              // 1 - beta2^t
    T eps, eps_root;
    T step_size;                     // lr * r_t (adaptive) or lr (momentum)
};

RADAM_HOST_DEVICE float radam_sqrt(float x) {
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(x);
#else
    return __builtin_sqrtf(x);
#endif
}

RADAM_HOST_DEVICE double radam_sqrt(double x) {
#if defined(__CUDA_ARCH__)
    return __dsqrt_rn(x);
#else
    return __builtin_sqrt(x);
#endif
}

// One RAdam step of one element, in place on p, m, v.
template <typename T>
RADAM_HOST_DEVICE void radam_element(const radam_flags f, const radam_scalars<T> s,
                                     T &p, T g, T &m, T &v) {
    if (f.maximize) g = -g;
    if (f.l2) g = g + s.weight_decay * p;
    m = s.beta1 * m + s.one_minus_beta1 * g;                  // Alg. 2, line 6
    v = s.beta2 * v + s.one_minus_beta2 * (g * g);            // Alg. 2, line 5
    T m_hat;                                                  // Alg. 2, line 7
    if (f.nesterov)
        m_hat = s.beta1 * (m / s.bias_correction1_next)
              + s.one_minus_beta1 * (g / s.bias_correction1);
    else
        m_hat = m / s.bias_correction1;
    if (f.decay == RADAM_DECAY_SUBTRACT)                      // section 5
        p = p - s.decay_factor * p;
    else if (f.decay == RADAM_DECAY_MULTIPLY)
        p = p * s.decay_factor;
    if (f.update == RADAM_ADAPTIVE) {
        T adaptive;                                           // D_t, Alg. 2 line 10
        if (f.eps_after) {
            T v_hat = v / s.bias_correction2;
            T root = f.eps_root ? radam_sqrt(v_hat + s.eps_root) : radam_sqrt(v_hat);
            adaptive = T(1) / (root + s.eps);
        } else {
            T root = f.eps_root ? radam_sqrt(v + s.eps_root) : radam_sqrt(v);
            adaptive = s.sqrt_bias_correction2 / (root + s.eps);
        }
        p = p - s.step_size * (m_hat * adaptive);             // Alg. 2, line 12
    } else if (f.update == RADAM_MOMENTUM) {
        p = p - s.step_size * m_hat;                          // Alg. 2, line 14
    }
}

// float -> bfloat16 bits, round to nearest even (NaN stays a quiet NaN).  Used by the
// kernels on devices without cvt.rn.bf16.f32 (before sm_80) and tested on the host.
RADAM_HOST_DEVICE unsigned short radam_bf16_bits_rn(float x) {
#if defined(__CUDA_ARCH__)
    unsigned int u = __float_as_uint(x);
#else
    unsigned int u;
    __builtin_memcpy(&u, &x, sizeof u);
#endif
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

#endif  // RADAM_ELEMENT_CUH
