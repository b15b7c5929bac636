// radam.mjs - RAdam (Liu et al., "On the Variance of the Adaptive Learning Rate
// and Beyond", ICLR 2020, Algorithm 2) as a dependency-free ES module for Node
// and browsers.  It imports nothing; arrays are Float64Array, checked at the
// boundary; the step updates params, m and v in place and allocates nothing.
//
// For step t and every element (the reference spec radam_ref._step states the
// same with the options):
//
//     g <- -g                                 if maximize
//     g <- g + λθ                             if weightDecayMode "l2"
//     m  = β1 m + (1 − β1) g                  (line 6)
//     v  = β2 v + (1 − β2) g²                 (line 5)
//     m̂  = m / (1 − β1^t)                     (line 7; Nesterov: optax's variant)
//     θ <- θ − (αλ)θ  or  θ(1 − αλ)           decoupled weight decay (§5)
//     if ρ_t > threshold (lines 8–9):  θ <- θ − (α r_t)(m̂ D_t)   (lines 10–12)
//     else:                            θ <- θ − α m̂              (line 14; or unchanged)
//
// D_t = sqrt(1 − β2^t) / (sqrt(v + epsRoot) + ε) with ε before bias correction
// (the paper's ψ̂, §3.1), else 1 / (sqrt(v/(1 − β2^t) + epsRoot) + ε).
//
// Usage:
//     import { paperConfig, step } from "./radam.mjs";
//     const config = paperConfig({ lr: 1e-2 });
//     const m = new Float64Array(n), v = new Float64Array(n);
//     let count = 0;
//     step(config, ++count, params, grad, m, v);   // each training step

export const VERSION = "1.0.0";

const COMPARISONS = [">", ">="];
const EPS_PLACEMENTS = ["before_bias_correction", "after_bias_correction"];
const WEIGHT_DECAY_MODES = ["none", "l2", "decoupled", "decoupled_moving"];
const DECAY_FORMS = ["subtract", "multiply"];
const BEFORE_RECTIFICATION = ["sgd_momentum", "none"];

/** The values each option can take (the axes of radam_ref.RAdamConfig). */
export const CHOICES = Object.freeze({
  comparison: COMPARISONS, epsPlacement: EPS_PLACEMENTS, weightDecayMode: WEIGHT_DECAY_MODES,
  decayForm: DECAY_FORMS, beforeRectification: BEFORE_RECTIFICATION,
});

/** The paper profile (Algorithm 2, threshold ρ_t > 4, ε before bias correction,
 *  decoupled weight decay θ − (αλ)θ, SGD with momentum before rectification),
 *  with `overrides` applied and checked. */
export function paperConfig(overrides = {}) {
  return checkConfig({
    lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.0, threshold: 4.0, comparison: ">",
    epsPlacement: "before_bias_correction", epsRoot: 0.0, weightDecayMode: "decoupled",
    decayForm: "subtract", beforeRectification: "sgd_momentum", nesterov: false, maximize: false,
    ...overrides,
  });
}

function nonNegative(name, x) {
  if (typeof x !== "number" || !Number.isFinite(x) || x < 0) {
    throw new RangeError(`${name} must be a finite number >= 0, got ${x}`);
  }
}

function oneOf(name, x, choices) {
  if (!choices.includes(x)) throw new RangeError(`${name} must be one of ${choices.join(", ")}, got ${x}`);
}

/** Check every field of `config`; returns it (frozen) or throws TypeError/RangeError. */
export function checkConfig(config) {
  if (config === null || typeof config !== "object") throw new TypeError(`config must be an object, got ${config}`);
  for (const name of ["lr", "eps", "weightDecay", "epsRoot"]) nonNegative(name, config[name]);
  const b = config.betas;
  if (!Array.isArray(b) || b.length !== 2) throw new TypeError(`betas must be a pair, got ${b}`);
  b.forEach((beta, i) => {
    if (typeof beta !== "number" || !(beta >= 0 && beta < 1)) {
      throw new RangeError(`betas[${i}] must be in [0, 1), got ${beta}`);
    }
  });
  if (typeof config.threshold !== "number" || !Number.isFinite(config.threshold) || config.threshold < 4) {
    throw new RangeError(`threshold must be a finite number >= 4, got ${config.threshold}`);
  }
  oneOf("comparison", config.comparison, COMPARISONS);
  oneOf("epsPlacement", config.epsPlacement, EPS_PLACEMENTS);
  oneOf("weightDecayMode", config.weightDecayMode, WEIGHT_DECAY_MODES);
  oneOf("decayForm", config.decayForm, DECAY_FORMS);
  oneOf("beforeRectification", config.beforeRectification, BEFORE_RECTIFICATION);
  for (const flag of ["nesterov", "maximize"]) {
    if (typeof config[flag] !== "boolean") throw new TypeError(`${flag} must be a boolean, got ${config[flag]}`);
  }
  const checked = Object.freeze({ ...config, betas: Object.freeze([b[0], b[1]]) });
  CHECKED.add(checked);
  return checked;
}

// Configs that checkConfig returned (frozen, so still valid): step checks any other.
const CHECKED = new WeakSet();

// −ln β for β ∈ (0, 1): log1p of the exact 1 − β where that is exact.
function negLog(beta) {
  return beta >= 0.5 ? -Math.log1p(beta - 1) : -Math.log(beta);
}

/** 1 − β^t = −expm1(−t·(−ln β)), without cancellation (1 for β = 0). */
export function oneMinusPow(beta, t) {
  return beta === 0 ? 1 : -Math.expm1(-t * negLog(beta));
}

// c0 = 2/δ − 2/L − 1 (δ = 1 − β, L = −ln(1 − δ)) for δ < 0.4 without cancellation:
// with L = δS, S = Σ_{k≥0} δ^k/(k+1): c0 = (Σ_{k≥1} δ^k k/((k+1)(k+2))) / S.
function c0(delta) {
  let num = 0, s = 1, power = 1;
  for (let k = 1; k < 200; k++) {
    power *= delta;
    num += (power * k) / ((k + 1) * (k + 2));
    s += power / (k + 1);
    if (power < 1e-18) break;
  }
  return num / s;
}

// B(u) = u/(e^u − 1) − 1 + u/2 = Σ_{k≥1} B_2k u^2k/(2k)! in w = u², highest degree first.
const BERNOULLI = [
  -3617 / 510 / 20922789888000, 7 / 6 / 87178291200, -691 / 2730 / 479001600, 5 / 66 / 3628800,
  -1 / 30 / 40320, 1 / 42 / 720, -1 / 30 / 24, 1 / 6 / 2,
];

function bernoulli(w) {
  let poly = 0;
  for (const c of BERNOULLI) poly = poly * w + c;
  return poly * w;
}

/** The step scalars of `config` at step `t` ≥ 1 (Alg. 2 lines 2, 7–11), in
 *  float64 without cancellation: {t, rhoInf, rhoT, rectified, rT,
 *  biasCorrection1, biasCorrection2}.  Math.expm1/log1p are implementation-
 *  approximated, so compare these with the spec in ulps, not bits. */
export function schedule(config, t) {
  if (!Number.isInteger(t) || t < 1) throw new RangeError(`step t must be an integer >= 1, got ${t}`);
  const [, beta2] = config.betas;
  const rhoInf = 2 / (1 - beta2) - 1;
  let rhoT;
  if (beta2 === 0) {
    rhoT = rhoInf;
  } else {
    const L = negLog(beta2);
    const u = t * L;
    if (u >= 0.5) rhoT = u > 700 ? rhoInf : rhoInf - (2 / L) * (u / Math.expm1(u));
    else rhoT = c0(1 - beta2) + t - (2 / L) * bernoulli(u * u);
  }
  const rectified = config.comparison === ">" ? rhoT > config.threshold : rhoT >= config.threshold;
  let rT = 0;
  if (rectified) {
    const denom = (rhoInf - 4) * (rhoInf - 2);
    rT = Math.sqrt(((rhoT - 4) * (rhoT - 2) * rhoInf) / (denom * rhoT));
  }
  return {
    t, rhoInf, rhoT, rectified, rT,
    biasCorrection1: oneMinusPow(config.betas[0], t),
    biasCorrection2: oneMinusPow(beta2, t),
  };
}

function float64Array(name, a, n) {
  if (!(a instanceof Float64Array)) {
    throw new TypeError(`${name} must be a Float64Array, got ${a === null ? "null" : a?.constructor?.name ?? typeof a}`);
  }
  if (n !== undefined && a.length !== n) {
    throw new RangeError(`${name} has ${a.length} elements, params has ${n}`);
  }
}

/** One RAdam step at step `t` (1-based; keep one counter per parameter tensor).
 *  Updates `params`, `m` and `v` in place (Float64Array, all of one length);
 *  `grad` is only read.  `config` from paperConfig/checkConfig (any other
 *  object is checked first).  Throws
 *  TypeError/RangeError, before writing anything, on bad arguments. */
export function step(config, t, params, grad, m, v) {
  if (!CHECKED.has(config)) config = checkConfig(config);
  float64Array("params", params);
  const n = params.length;
  float64Array("grad", grad, n);
  float64Array("m", m, n);
  float64Array("v", v, n);
  const s = schedule(config, t);
  const [b1, b2] = config.betas;
  const oneB1 = 1 - b1, oneB2 = 1 - b2;
  const bc1 = s.biasCorrection1, bc2 = s.biasCorrection2;
  const bc1Next = config.nesterov ? oneMinusPow(b1, t + 1) : 1;
  const sqrtBc2 = Math.sqrt(bc2);
  const { lr, eps, epsRoot } = config;
  const lrWd = lr * config.weightDecay, keep = 1 - lrWd;
  const stepSize = lr * s.rT;
  const l2 = config.weightDecayMode === "l2" ? config.weightDecay : 0;
  const moves = s.rectified || config.beforeRectification === "sgd_momentum";
  const decay = config.weightDecay !== 0 && (config.weightDecayMode === "decoupled"
    || (config.weightDecayMode === "decoupled_moving" && moves));
  const subtract = config.decayForm === "subtract";
  const before = config.epsPlacement === "before_bias_correction";
  for (let i = 0; i < n; i++) {
    let g = grad[i], p = params[i];
    if (config.maximize) g = -g;
    if (l2 !== 0) g = g + l2 * p;
    const mi = b1 * m[i] + oneB1 * g;
    const vi = b2 * v[i] + oneB2 * (g * g);
    const mHat = config.nesterov ? b1 * (mi / bc1Next) + oneB1 * (g / bc1) : mi / bc1;
    if (decay) p = subtract ? p - lrWd * p : p * keep;
    if (s.rectified) {
      const d = before ? sqrtBc2 / (Math.sqrt(vi + epsRoot) + eps) : 1 / (Math.sqrt(vi / bc2 + epsRoot) + eps);
      p = p - stepSize * (mHat * d);
    } else if (moves) {
      p = p - lr * mHat;
    }
    params[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}
