/* radam.c - RAdam in dependency-free C99; see radam.h.
 *
 * For step t and every element (Liu et al. 2020, Algorithm 2; the reference
 * spec radam_ref._step states the same with the options):
 *
 *     g <- -g                                   if maximize
 *     g <- g + lambda theta                      if weight decay mode L2
 *     m  = beta1 m + (1 - beta1) g               (line 6)
 *     v  = beta2 v + (1 - beta2) g^2             (line 5)
 *     mh = m / (1 - beta1^t)                     (line 7; Nesterov: optax's variant)
 *     theta <- theta - (alpha lambda) theta      if decoupled decay applies (section 5)
 *     if rho_t > threshold (lines 8-9):
 *         theta <- theta - (alpha r_t) (mh D_t)  (lines 10-12)
 *     else:
 *         theta <- theta - alpha mh              (line 14; or unchanged)
 *
 * with D_t = sqrt(1 - beta2^t) / (sqrt(v + eps_root) + eps) (eps before bias
 * correction, the paper's psi-hat of section 3.1) or
 * 1 / (sqrt(v / (1 - beta2^t) + eps_root) + eps).
 *
 * The step scalars are computed without cancellation (radam__schedule).
 */
#include "radam.h"

#include <math.h>

void radam_config_paper(radam_config *c)
{
    if (!c) return;
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = 0.0;
    c->threshold = 4.0;
    c->eps_root = 0.0;
    c->comparison = RADAM_GT;
    c->eps_placement = RADAM_EPS_BEFORE_BIAS_CORRECTION;
    c->weight_decay_mode = RADAM_WD_DECOUPLED;
    c->decay_form = RADAM_DECAY_SUBTRACT;
    c->before_rectification = RADAM_BEFORE_SGD_MOMENTUM;
    c->nesterov = 0;
    c->maximize = 0;
}

static int radam__finite(double x) { return x == x && x - x == 0.0; }
static int radam__nonneg(double x) { return radam__finite(x) && x >= 0.0; }
static int radam__beta(double x) { return x >= 0.0 && x < 1.0; }

int radam_config_check(const radam_config *c)
{
    if (!c) return RADAM_EINVAL;
    if (!radam__nonneg(c->lr) || !radam__nonneg(c->eps) || !radam__nonneg(c->weight_decay)
        || !radam__nonneg(c->eps_root)) return RADAM_ECONFIG;
    if (!radam__beta(c->beta1) || !radam__beta(c->beta2)) return RADAM_ECONFIG;
    if (!radam__finite(c->threshold) || !(c->threshold >= 4.0)) return RADAM_ECONFIG;
    if (c->comparison != RADAM_GT && c->comparison != RADAM_GE) return RADAM_ECONFIG;
    if (c->eps_placement != RADAM_EPS_BEFORE_BIAS_CORRECTION
        && c->eps_placement != RADAM_EPS_AFTER_BIAS_CORRECTION) return RADAM_ECONFIG;
    if (c->weight_decay_mode < RADAM_WD_NONE || c->weight_decay_mode > RADAM_WD_DECOUPLED_MOVING)
        return RADAM_ECONFIG;
    if (c->decay_form != RADAM_DECAY_SUBTRACT && c->decay_form != RADAM_DECAY_MULTIPLY) return RADAM_ECONFIG;
    if (c->before_rectification != RADAM_BEFORE_SGD_MOMENTUM && c->before_rectification != RADAM_BEFORE_NONE)
        return RADAM_ECONFIG;
    if ((c->nesterov != 0 && c->nesterov != 1) || (c->maximize != 0 && c->maximize != 1)) return RADAM_ECONFIG;
    return RADAM_OK;
}

/* L = -ln(beta) for beta in (0, 1): log1p of the exact 1 - beta where that is exact. */
static double radam__neg_log(double beta)
{
    return beta >= 0.5 ? -log1p(beta - 1.0) : -log(beta);
}

/* 1 - beta^t = -expm1(-t L), without cancellation (1 for beta = 0). */
static double radam__one_minus_pow(double beta, double t)
{
    if (beta == 0.0) return 1.0;
    return -expm1(-t * radam__neg_log(beta));
}

/* c0 = 2/delta - 2/L - 1 with delta = 1 - beta, L = -ln(1 - delta), for
 * delta < 0.4.  Directly it cancels (c0 ~ delta/6 while 2/delta is huge); with
 * L = delta S, S = sum_{k>=0} delta^k/(k+1), and T = (S - 1)/delta,
 * c0 = (2T - S)/S = (sum_{k>=1} delta^k k/((k+1)(k+2))) / S: no cancellation. */
static double radam__c0(double delta)
{
    double num = 0.0, s = 1.0, power = 1.0;
    int k;
    for (k = 1; k < 200; ++k) {
        power *= delta;
        num += power * (double)k / ((double)(k + 1) * (double)(k + 2));
        s += power / (double)(k + 1);
        if (power < 1e-18) break;
    }
    return num / s;
}

/* Bernoulli series B(u) = u/(e^u - 1) - 1 + u/2 = sum_{k>=1} B_2k u^2k/(2k)!, in w = u^2,
 * highest degree first (omitted terms < 1e-19 of the first for u <= 1/2). */
static double radam__bernoulli(double w)
{
    static const double coeff[8] = {
        -3617.0 / 510.0 / 20922789888000.0, /* k = 8: B_16 / 16! */
        7.0 / 6.0 / 87178291200.0,          /* k = 7 */
        -691.0 / 2730.0 / 479001600.0,      /* k = 6 */
        5.0 / 66.0 / 3628800.0,             /* k = 5 */
        -1.0 / 30.0 / 40320.0,              /* k = 4 */
        1.0 / 42.0 / 720.0,                 /* k = 3 */
        -1.0 / 30.0 / 24.0,                 /* k = 2 */
        1.0 / 6.0 / 2.0                     /* k = 1 */
    };
    double poly = 0.0;
    int i;
    for (i = 0; i < 8; ++i) poly = poly * w + coeff[i];
    return poly * w;
}

int radam_schedule_at(const radam_config *c, long t, radam_schedule *out)
{
    int rc;
    double rho_inf, rho_t, big_l, u;
    if (!c || !out) return RADAM_EINVAL;
    rc = radam_config_check(c);
    if (rc) return rc;
    if (t < 1) return RADAM_ESTEP;
    rho_inf = 2.0 / (1.0 - c->beta2) - 1.0;
    if (c->beta2 == 0.0) {
        rho_t = rho_inf; /* beta2^t = 0 */
    } else {
        big_l = radam__neg_log(c->beta2);
        u = (double)t * big_l;
        if (u >= 0.5) {
            /* rho_inf - 2 t beta2^t / (1 - beta2^t) = rho_inf - (2/L) u / (e^u - 1) */
            rho_t = u > 700.0 ? rho_inf : rho_inf - (2.0 / big_l) * (u / expm1(u));
        } else {
            /* u/(e^u - 1) = 1 - u/2 + B(u): rho_t = c0 + t - (2/L) B(u) */
            rho_t = radam__c0(1.0 - c->beta2) + (double)t - (2.0 / big_l) * radam__bernoulli(u * u);
        }
    }
    out->t = t;
    out->rho_inf = rho_inf;
    out->rho_t = rho_t;
    out->rectified = c->comparison == RADAM_GT ? rho_t > c->threshold : rho_t >= c->threshold;
    out->r_t = 0.0;
    if (out->rectified) {
        double denom = (rho_inf - 4.0) * (rho_inf - 2.0);
        out->r_t = sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / (denom * rho_t));
    }
    out->bias_correction1 = radam__one_minus_pow(c->beta1, (double)t);
    out->bias_correction2 = radam__one_minus_pow(c->beta2, (double)t);
    return RADAM_OK;
}

/* What one step does, decided once per call (not per element). */
typedef struct radam__plan {
    radam_schedule s;
    double bc1_next; /* 1 - beta1^(t+1), Nesterov only */
    int moves;       /* theta changes on this step */
    int decay;       /* decoupled weight decay applies on this step */
} radam__plan;

static int radam__prepare(int n, const radam_config *c, long t, const void *theta, const void *grad,
                          const void *m, const void *v, radam__plan *plan)
{
    int rc;
    if (n < 0 || (n > 0 && (!theta || !grad || !m || !v))) return RADAM_EINVAL;
    rc = radam_schedule_at(c, t, &plan->s);
    if (rc) return rc;
    plan->bc1_next = c->nesterov ? radam__one_minus_pow(c->beta1, (double)t + 1.0) : 1.0; /* no overflow at LONG_MAX */
    plan->moves = plan->s.rectified || c->before_rectification == RADAM_BEFORE_SGD_MOMENTUM;
    plan->decay = c->weight_decay != 0.0
                  && (c->weight_decay_mode == RADAM_WD_DECOUPLED
                      || (c->weight_decay_mode == RADAM_WD_DECOUPLED_MOVING && plan->moves));
    return RADAM_OK;
}

int radam_step(int n, const radam_config *c, long t, double *theta, const double *grad, double *m, double *v)
{
    radam__plan plan;
    int i, rc = radam__prepare(n, c, t, theta, grad, m, v, &plan);
    double b1, b2, one_b1, one_b2, bc1, bc2, sqrt_bc2, lr_wd, keep, step_size, l2;
    if (rc) return rc;
    b1 = c->beta1;
    b2 = c->beta2;
    one_b1 = 1.0 - b1;
    one_b2 = 1.0 - b2;
    bc1 = plan.s.bias_correction1;
    bc2 = plan.s.bias_correction2;
    sqrt_bc2 = sqrt(bc2);
    lr_wd = c->lr * c->weight_decay;
    keep = 1.0 - lr_wd;
    step_size = c->lr * plan.s.r_t;
    l2 = c->weight_decay_mode == RADAM_WD_L2 ? c->weight_decay : 0.0;
    for (i = 0; i < n; ++i) {
        double g = grad[i], mi, vi, m_hat, p = theta[i];
        if (c->maximize) g = -g;
        if (l2 != 0.0) g = g + l2 * p;
        mi = b1 * m[i] + one_b1 * g;
        vi = b2 * v[i] + one_b2 * (g * g);
        m_hat = c->nesterov ? b1 * (mi / plan.bc1_next) + one_b1 * (g / bc1) : mi / bc1;
        if (plan.decay) p = c->decay_form == RADAM_DECAY_SUBTRACT ? p - lr_wd * p : p * keep;
        if (plan.s.rectified) {
            double d = c->eps_placement == RADAM_EPS_BEFORE_BIAS_CORRECTION
                           ? sqrt_bc2 / (sqrt(vi + c->eps_root) + c->eps)
                           : 1.0 / (sqrt(vi / bc2 + c->eps_root) + c->eps);
            p = p - step_size * (m_hat * d);
        } else if (plan.moves) {
            p = p - c->lr * m_hat;
        }
        theta[i] = p;
        m[i] = mi;
        v[i] = vi;
    }
    return RADAM_OK;
}

int radam_step_f32(int n, const radam_config *c, long t, float *theta, const float *grad, float *m, float *v)
{
    radam__plan plan;
    int i, rc = radam__prepare(n, c, t, theta, grad, m, v, &plan);
    float b1, b2, one_b1, one_b2, bc1, bc2, bc1_next, sqrt_bc2, lr, lr_wd, keep, step_size, l2, eps, eps_root;
    if (rc) return rc;
    /* Every scalar is computed in double and rounded once to float. */
    b1 = (float)c->beta1;
    b2 = (float)c->beta2;
    one_b1 = (float)(1.0 - c->beta1);
    one_b2 = (float)(1.0 - c->beta2);
    bc1 = (float)plan.s.bias_correction1;
    bc2 = (float)plan.s.bias_correction2;
    bc1_next = (float)plan.bc1_next;
    sqrt_bc2 = (float)sqrt(plan.s.bias_correction2);
    lr = (float)c->lr;
    lr_wd = (float)(c->lr * c->weight_decay);
    keep = (float)(1.0 - c->lr * c->weight_decay);
    step_size = (float)(c->lr * plan.s.r_t);
    l2 = c->weight_decay_mode == RADAM_WD_L2 ? (float)c->weight_decay : 0.0f;
    eps = (float)c->eps;
    eps_root = (float)c->eps_root;
    for (i = 0; i < n; ++i) {
        float g = grad[i], mi, vi, m_hat, p = theta[i];
        if (c->maximize) g = -g;
        if (l2 != 0.0f) g = g + l2 * p;
        mi = b1 * m[i] + one_b1 * g;
        vi = b2 * v[i] + one_b2 * (g * g);
        m_hat = c->nesterov ? b1 * (mi / bc1_next) + one_b1 * (g / bc1) : mi / bc1;
        if (plan.decay) p = c->decay_form == RADAM_DECAY_SUBTRACT ? p - lr_wd * p : p * keep;
        if (plan.s.rectified) {
            float d = c->eps_placement == RADAM_EPS_BEFORE_BIAS_CORRECTION
                          ? sqrt_bc2 / ((float)sqrt(vi + eps_root) + eps)
                          : 1.0f / ((float)sqrt(vi / bc2 + eps_root) + eps);
            p = p - step_size * (m_hat * d);
        } else if (plan.moves) {
            p = p - lr * m_hat;
        }
        theta[i] = p;
        m[i] = mi;
        v[i] = vi;
    }
    return RADAM_OK;
}
