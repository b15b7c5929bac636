/* radam.h - RAdam (Liu et al., "On the Variance of the Adaptive Learning Rate
 * and Beyond", ICLR 2020, Algorithm 2) in dependency-free C99.
 *
 * One header and one file (radam.c); only libc (<math.h>).  Compiles as C99
 * (-std=c99 -pedantic) and as C++.  Build with -ffp-contract=off and without
 * fast-math: the port is checked against the reference spec element by element.
 *
 * Usage: the caller owns every array.  Per parameter tensor of n elements keep
 * the step count (0 before the first step) and two arrays m, v of n elements,
 * zero-initialised (Alg. 2 line 1).  Each step:
 *
 *     radam_config c;
 *     radam_config_paper(&c);              // the paper profile, then set lr ...
 *     count += 1;
 *     int rc = radam_step(n, &c, count, theta, grad, m, v);   // 0 or RADAM_E...
 *
 * radam_step never allocates, prints or aborts; errors are negative return
 * values and leave every array untouched.
 */
#ifndef RADAM_H
#define RADAM_H

#define RADAM_VERSION_MAJOR 1
#define RADAM_VERSION_MINOR 0
#define RADAM_VERSION_PATCH 0
#define RADAM_VERSION "1.0.0"

/* Error codes (negative). */
#define RADAM_OK 0
#define RADAM_EINVAL (-1)   /* n < 0, or a NULL array with n > 0 */
#define RADAM_ECONFIG (-2)  /* a hyperparameter or option out of range */
#define RADAM_ESTEP (-3)    /* step number t < 1 */

/* Option values. */
enum radam_comparison { RADAM_GT = 0, RADAM_GE = 1 };
enum radam_eps_placement { RADAM_EPS_BEFORE_BIAS_CORRECTION = 0, RADAM_EPS_AFTER_BIAS_CORRECTION = 1 };
enum radam_weight_decay_mode { RADAM_WD_NONE = 0, RADAM_WD_L2 = 1, RADAM_WD_DECOUPLED = 2,
                               RADAM_WD_DECOUPLED_MOVING = 3 };
enum radam_decay_form { RADAM_DECAY_SUBTRACT = 0, RADAM_DECAY_MULTIPLY = 1 };
enum radam_before_rectification { RADAM_BEFORE_SGD_MOMENTUM = 0, RADAM_BEFORE_NONE = 1 };

#ifdef __cplusplus
extern "C" {
#endif

/* Hyperparameters and the axes on which published implementations differ
 * (the fields of radam_ref.RAdamConfig). */
typedef struct radam_config {
    double lr;            /* step size alpha >= 0 */
    double beta1, beta2;  /* each in [0, 1) */
    double eps;           /* >= 0, added to the denominator */
    double weight_decay;  /* lambda >= 0, applied per weight_decay_mode */
    double threshold;     /* tractability threshold on rho_t, >= 4 (paper 4) */
    double eps_root;      /* >= 0, added inside the square root */
    int comparison;       /* RADAM_GT (rho_t > threshold) or RADAM_GE */
    int eps_placement;    /* RADAM_EPS_BEFORE_BIAS_CORRECTION (paper) or _AFTER_ */
    int weight_decay_mode;
    int decay_form;       /* RADAM_DECAY_SUBTRACT: theta - (alpha lambda) theta (paper) */
    int before_rectification;
    int nesterov;         /* optax's Nesterov variant (0 or 1) */
    int maximize;         /* ascend: g <- -g first (0 or 1) */
} radam_config;

/* The step scalars at step t (Alg. 2 lines 2, 7-11). */
typedef struct radam_schedule {
    long t;
    double rho_inf;            /* 2/(1 - beta2) - 1 */
    double rho_t;              /* rho_inf - 2 t beta2^t / (1 - beta2^t) */
    int rectified;             /* rho_t > threshold (or >=) */
    double r_t;                /* rectification term, 0 when not rectified */
    double bias_correction1;   /* 1 - beta1^t */
    double bias_correction2;   /* 1 - beta2^t */
} radam_schedule;

/** Fill @p c with the paper profile: lr 1e-3, betas (0.9, 0.999), eps 1e-8,
 *  no weight decay (mode decoupled, form subtract), threshold rho_t > 4, eps
 *  before bias correction, SGD with bias-corrected momentum before
 *  rectification. */
void radam_config_paper(radam_config *c);

/** 0 if @p c is valid, else RADAM_ECONFIG (or RADAM_EINVAL for NULL). */
int radam_config_check(const radam_config *c);

/** The step scalars of @p c at step @p t >= 1, computed in double without
 *  cancellation (expm1/log1p and a series near t*ln(beta2) = 0).
 *  @return 0, RADAM_EINVAL, RADAM_ECONFIG or RADAM_ESTEP. */
int radam_schedule_at(const radam_config *c, long t, radam_schedule *out);

/** One RAdam step on @p n double elements at step @p t (1-based).
 *  @param theta  in/out parameters
 *  @param grad   the gradient (not written)
 *  @param m, v   in/out first and second moments (zero before step 1)
 *  @return 0 or a negative RADAM_E... code (nothing written then). */
int radam_step(int n, const radam_config *c, long t, double *theta, const double *grad, double *m, double *v);

/** The same on float arrays: step scalars in double, rounded to float, and the
 *  element arithmetic in float. */
int radam_step_f32(int n, const radam_config *c, long t, float *theta, const float *grad, float *m, float *v);

#ifdef __cplusplus
}
#endif

#endif /* RADAM_H */
