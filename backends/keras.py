r"""RAdam for Keras 3: a ``keras.optimizers.Optimizer`` that follows the spec.

:class:`RAdam` runs on every Keras 3 backend (JAX, PyTorch, TensorFlow) and
works wherever a Keras optimizer does: ``model.compile(optimizer=RAdam())``,
custom loops with ``apply_gradients``, and JAX's ``stateless_apply``.  The math
is :func:`radam_ref.step` (Liu et al. 2020, Algorithm 2) with every option of
:class:`radam_ref.RAdamConfig`; the default is the ``paper`` profile.  For step
t = ``iterations + 1`` and each variable:

.. math::

    g_t &\leftarrow -g_t \ \text{(maximize)}, \quad
        g_t \leftarrow g_t + \lambda\theta_{t-1} \ \text{(L2)} \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2
        && \text{(Alg. 2, lines 5–6)} \\
    \hat m_t &= m_t / (1-\beta_1^t) && \text{(line 7)} \\
    \theta &\leftarrow \theta - (\alpha\lambda)\theta
        \ \text{(decoupled decay, §5; or } \theta(1-\alpha\lambda)\text{)} \\
    \theta_t &= \theta - \alpha\, r_t\, \hat m_t\,
        \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon}
        \ \text{ if } \rho_t > \text{threshold}
        && \text{(lines 8–12)} \\
    \theta_t &= \theta - \alpha \hat m_t \ \text{ otherwise}
        && \text{(line 14)}

The step scalars (ρ_t, the threshold decision, r_t, 1 − β₁ᵗ, 1 − β₂ᵗ) come from
:func:`radam_ref.schedule_array`, evaluated on the Keras step counter with
``keras.ops`` — inside ``jit``/``tf.function`` the counter is traced, so the
exact host scalars of :func:`radam_ref.schedule` are not available.  They are
computed once per step in float64 (float32 on JAX without x64 and on Apple MPS)
with the cancellation-free ``expm1`` formula of that function, then rounded
once to each variable's dtype; the per-variable arithmetic is the spec's, in
the spec's order, in the variable's dtype.  Both branches of the threshold are
evaluated and one is selected with ``ops.where``; the unselected branch never
takes the square root of a negative number (``schedule_array`` clamps).

Keras conventions, and how the spec maps onto them:

* One step counter per optimizer (``iterations``), shared by its variables, as
  in every Keras optimizer.  A variable whose gradient is ``None`` is skipped
  (unchanged, moments untouched), but the counter still advances — unlike
  ``torch.optim``, whose counters are per parameter.
* No parameter groups: use one optimizer per group
  (``keras.optimizers.MultiOptimizer``, or one ``apply_gradients`` per group).
* Weight decay is the spec's ``weight_decay_mode``, applied exactly once, in
  ``update_step``; Keras' built-in ``_apply_weight_decay`` (θ ← θ − θλα before
  every step) is turned off.  ``exclude_from_weight_decay`` is honoured by
  every mode.
* Clipping (``clipnorm``, ``clipvalue``, ``global_clipnorm``), loss scaling,
  gradient accumulation (t counts accumulated steps) and EMA are Keras' own
  and act as they do for ``keras.optimizers.Adam``.
* The learning rate is a Keras variable of ``keras.config.floatx()`` (or a
  schedule).  For float64 variables set ``keras.config.set_floatx("float64")``
  (on JAX, enable x64 first), otherwise α itself is rounded to float32.
* Registered with Keras as ``"radam_ref>RAdam"``, so a model saved with it
  (``model.save``) loads with ``keras.models.load_model`` once this module is
  imported, optimizer state included.
* Real floating variables only (float16, bfloat16, float32, float64); the
  moments have the variable's dtype.  Complex and integer variables are
  rejected in ``build`` with a ``TypeError``.
"""

from __future__ import annotations

import numbers

try:
    import keras
    from keras import ops
except ImportError as exc:  # pragma: no cover - depends on the environment
    _missing = getattr(exc, "name", None) or ""
    if _missing.split(".")[0] in ("tensorflow", "jax", "torch"):
        raise ImportError(
            f"Keras could not import its backend ({exc}); install that backend or choose "
            "another one with the KERAS_BACKEND environment variable (jax, torch or "
            "tensorflow) before importing Keras"
        ) from exc
    raise ImportError(
        "radam_ref.backends.keras needs Keras 3: pip install 'radam-ref[keras]' "
        f"({type(exc).__name__}: {exc})"
    ) from exc

if not hasattr(keras, "ops"):  # pragma: no cover - Keras 2
    raise ImportError(
        f"radam_ref.backends.keras needs Keras 3, found Keras {keras.__version__}: "
        "pip install 'radam-ref[keras]'"
    )

import numpy as np

from radam_ref import PROFILES, NonFiniteGradientError, RAdamConfig, schedule_array
from radam_ref._config import AXES as _SPEC_AXES

__all__ = ["RAdam", "AXES"]

#: The RAdamConfig axes :class:`RAdam` takes as keywords (besides the
#: hyperparameters, which use Keras' names).
AXES = _SPEC_AXES

_REAL_FLOATS = ("float16", "bfloat16", "float32", "float64")


class _KerasOps:
    """The few array-API functions :func:`radam_ref.schedule_array` calls, on
    ``keras.ops``, so the spec's scalar formulas run on any Keras backend."""

    @staticmethod
    def asarray(x, dtype=None, device=None):  # noqa: ARG004 - Keras places tensors itself
        return ops.convert_to_tensor(x, dtype=dtype)

    @staticmethod
    def astype(x, dtype):
        return ops.cast(x, dtype)

    expm1 = staticmethod(ops.expm1)
    sqrt = staticmethod(ops.sqrt)
    where = staticmethod(ops.where)
    ones_like = staticmethod(ops.ones_like)
    zeros_like = staticmethod(ops.zeros_like)


def _scalar_dtype() -> str:
    """float64 where the backend computes in it here, else float32."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    if backend == "torch":
        device = getattr(ops.convert_to_tensor(0.0), "device", None)
        return "float32" if getattr(device, "type", "") == "mps" else "float64"
    return "float64"


def _as(x, dtype):
    """``x`` in ``dtype``: a Python float is rounded once, directly to ``dtype``
    (``ops.cast`` would first make it a float32 tensor on TensorFlow)."""
    if isinstance(x, float):
        return ops.convert_to_tensor(x, dtype=dtype)
    return ops.cast(x, dtype)


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="radam_ref")
class RAdam(keras.optimizers.Optimizer):
    """RAdam (Liu et al., ICLR 2020) as a Keras 3 optimizer; see the module docstring.

    Args:
        learning_rate: α: a float, a ``keras.optimizers.schedules.LearningRateSchedule``
            or a callable (default: the profile's, 1e-3).
        beta_1, beta_2: β₁, β₂ (default: the profile's, 0.9 and 0.999).
        epsilon: ε (default: the profile's: 1e-8, or 1e-7 for ``tf_addons``).
            Where it is added is ``eps_placement``.
        weight_decay: λ (default: the profile's, 0), applied per ``weight_decay_mode``.
        profile: a name in :data:`radam_ref.PROFILES` (default ``"paper"``).
        threshold, comparison, eps_placement, eps_root, weight_decay_mode,
        decay_form, before_rectification, nesterov, maximize, nonfinite: override
            one axis of the profile (see :class:`radam_ref.RAdamConfig`); None keeps
            the profile's.  ``nonfinite="raise"`` reads the gradients before each
            step, so it works only when the step runs eagerly.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps,
        name: Keras' own options, as for ``keras.optimizers.Adam``.

    Raises:
        ValueError, TypeError: for invalid values, naming them (e.g. ``Invalid
            beta parameter at index 1: 1.0``), before anything is built.
    """

    def __init__(
        self,
        learning_rate=None,
        beta_1=None,
        beta_2=None,
        epsilon=None,
        weight_decay=None,
        *,
        profile: str = "paper",
        threshold=None,
        comparison=None,
        eps_placement=None,
        eps_root=None,
        weight_decay_mode=None,
        decay_form=None,
        before_rectification=None,
        nesterov=None,
        maximize=None,
        nonfinite=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        if not isinstance(profile, str):
            raise TypeError(f"profile must be a string, got {profile!r}")
        base = RAdamConfig.from_profile(profile)
        exact_lr = None
        if learning_rate is None:
            learning_rate = base.lr
        if isinstance(learning_rate, numbers.Real) or isinstance(learning_rate, np.generic):
            learning_rate = exact_lr = _real("learning_rate", learning_rate)
        betas = (
            base.beta1 if beta_1 is None else beta_1,
            base.beta2 if beta_2 is None else beta_2,
        )
        overrides = {
            axis: value
            for axis, value in zip(
                AXES,
                (threshold, comparison, eps_placement, eps_root, weight_decay_mode, decay_form,
                 before_rectification, nesterov, maximize, nonfinite),
            )
            if value is not None
        }
        # Validates every value (naming it) before Keras creates any variable.
        spec = base.replace(
            lr=base.lr if exact_lr is None else exact_lr,
            betas=betas,
            eps=base.eps if epsilon is None else epsilon,
            weight_decay=base.weight_decay if weight_decay is None else weight_decay,
            **overrides,
        )
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            weight_decay=spec.weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        self._spec = spec
        self._exact_lr = exact_lr
        self.profile = profile
        self.beta_1, self.beta_2 = spec.betas
        self.epsilon = spec.eps
        for axis in AXES:
            setattr(self, axis, getattr(spec, axis))
        object.__setattr__(self, "_step_scalars", None)

    # ------------------------------------------------------------------ #

    @property
    def radam_config(self) -> RAdamConfig:
        """The :class:`radam_ref.RAdamConfig` this optimizer follows (``lr`` is the
        constructor's float learning rate, or the profile's with a schedule)."""
        return self._spec

    @classmethod
    def from_radam_config(cls, config: RAdamConfig, **kwargs) -> "RAdam":
        """An optimizer following ``config`` exactly; ``kwargs`` are Keras' own
        options (``name``, ``clipnorm``, ...) or override ``learning_rate``."""
        if not isinstance(config, RAdamConfig):
            raise TypeError(f"config must be a RAdamConfig, got {config!r}")
        options = dict(
            learning_rate=config.lr, beta_1=config.beta1, beta_2=config.beta2,
            epsilon=config.eps, weight_decay=config.weight_decay,
            profile=config.profile if config.profile in PROFILES else "paper",
            **{axis: getattr(config, axis) for axis in AXES},
        )
        options.update(kwargs)
        return cls(**options)

    def build(self, var_list):
        """Create the moments m and v (zeros of each variable's shape and dtype).

        Alg. 2, line 1.  All slots are created here, so ``load_own_variables``
        (which matches by position) restores a saved state exactly.
        """
        if self.built:
            return
        for variable in var_list:
            dtype = keras.backend.standardize_dtype(variable.dtype)
            if dtype not in _REAL_FLOATS:
                raise TypeError(
                    f"RAdam optimizes real floating variables ({', '.join(_REAL_FLOATS)}); "
                    f"variable {getattr(variable, 'path', variable.name)!r} has dtype {dtype}"
                )
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )

    def _apply_weight_decay(self, variables):
        """Off: the spec's weight decay is applied in :meth:`update_step`, once."""
        return

    def apply(self, grads, trainable_variables=None):
        """Keras' ``apply``, with the step scalars shared by all variables of the step
        and, for ``nonfinite="raise"``, every gradient checked before anything changes."""
        if self._spec.nonfinite == "raise":
            self._check_finite(grads, trainable_variables)
        object.__setattr__(self, "_step_scalars", None)
        try:
            return super().apply(grads, trainable_variables)
        finally:
            object.__setattr__(self, "_step_scalars", None)

    def _check_finite(self, grads, variables) -> None:
        variables = list(variables) if variables is not None else self._trainable_variables
        for index, grad in enumerate(grads):
            if grad is None:
                continue
            try:
                finite = bool(ops.convert_to_numpy(ops.all(ops.isfinite(grad))))
            except Exception as exc:  # noqa: BLE001 - a traced value
                raise ValueError(
                    "nonfinite='raise' reads the gradients before each step and cannot run "
                    "inside a compiled step (jit_compile / tf.function); compile the model "
                    "with run_eagerly=True, or use nonfinite='propagate'"
                ) from exc
            if not finite:
                where = (getattr(variables[index], "path", None) if index < len(variables)
                         else None) or f"gradient {index}"
                step = int(ops.convert_to_numpy(self.iterations)) + 1
                raise NonFiniteGradientError(
                    f"the gradient of {where} has non-finite elements at step {step}; "
                    "nothing was updated (nonfinite='raise')"
                )

    def _scalars(self):
        """(sched, sched_next, scalar dtype): the step scalars of t = iterations + 1
        from :func:`radam_ref.schedule_array`, computed once per step."""
        cached = self._step_scalars
        if cached is not None:
            return cached
        dtype = _scalar_dtype()
        spec = self._spec
        t = ops.cast(self.iterations + 1, dtype)
        kwargs = dict(beta1=spec.beta1, beta2=spec.beta2, threshold=spec.threshold,
                      comparison=spec.comparison, xp=_KerasOps, dtype=dtype)
        sched = schedule_array(t, **kwargs)
        sched_next = schedule_array(t + 1.0, **kwargs) if spec.nesterov else None
        cached = (sched, sched_next, dtype)
        object.__setattr__(self, "_step_scalars", cached)
        return cached

    def update_step(self, gradient, variable, learning_rate):
        """One step of Algorithm 2 for ``variable`` (module docstring); the
        arithmetic mirrors ``radam_ref._step._update_traced`` operation by operation."""
        spec = self._spec
        sched, sched_next, sdtype = self._scalars()
        dtype = variable.dtype

        def cast(x):
            return _as(x, dtype)

        index = self._get_variable_index(variable)
        m_var, v_var = self._momentums[index], self._velocities[index]
        lr = _as(learning_rate, sdtype)
        b1, b2 = spec.betas
        wd = spec.weight_decay if self._use_weight_decay(variable) else 0.0
        mode = spec.weight_decay_mode

        p = ops.convert_to_tensor(variable)
        g = cast(gradient)
        if spec.maximize:
            g = ops.negative(g)
        if mode == "l2" and wd != 0.0:
            g = g + cast(wd) * p
        m = cast(b1) * m_var + cast(1.0 - b1) * g          # Alg. 2, line 6
        v = cast(b2) * v_var + cast(1.0 - b2) * (g * g)    # Alg. 2, line 5
        self.assign(m_var, m)
        self.assign(v_var, v)

        bc1 = cast(sched.bias_correction1)
        if spec.nesterov:
            m_hat = cast(b1) * (m / cast(sched_next.bias_correction1)) + cast(1.0 - b1) * (g / bc1)
        else:
            m_hat = m / bc1                                  # Alg. 2, line 7
        rectified = sched.rectified
        sgd = spec.before_rectification == "sgd_momentum"
        if wd != 0.0 and mode in ("decoupled", "decoupled_moving"):
            decayed = self._decay(p, lr * wd, sdtype, dtype)
            if mode == "decoupled" or sgd:
                p = decayed
            else:  # decoupled_moving without SGD: only steps that move θ decay it
                p = ops.where(rectified, decayed, p)
        step_size = cast(lr * sched.r_t)                     # α r_t (lines 11–12)
        adaptive = self._adaptive(v, sched.bias_correction2, dtype)
        p_rect = p - step_size * (m_hat * adaptive)
        p_other = p - cast(lr) * m_hat if sgd else p         # line 14, or no move
        self.assign(variable, ops.where(rectified, p_rect, p_other))

    def _decay(self, p, lr_wd, sdtype, dtype):
        """Decoupled weight decay (§5) in the configured ``decay_form``:
        θ − (αλ)θ, or θ·(1 − αλ) with 1 − αλ formed in the scalar dtype."""
        if self._spec.decay_form == "subtract":
            return p - _as(lr_wd, dtype) * p
        return p * _as(_as(1.0, sdtype) - lr_wd, dtype)

    def _adaptive(self, v, bias_correction2, dtype):
        """D_t: sqrt(1 − β₂ᵗ)/(sqrt(v_t + eps_root) + ε) before bias correction, or
        1/(sqrt(v_t/(1 − β₂ᵗ) + eps_root) + ε) after (see ``radam_ref._step``)."""
        spec = self._spec
        eps = _as(spec.eps, dtype)
        if spec.eps_placement == "before_bias_correction":
            root = ops.sqrt(v + _as(spec.eps_root, dtype)) if spec.eps_root else ops.sqrt(v)
            return _as(ops.sqrt(bias_correction2), dtype) / (root + eps)
        v_hat = v / _as(bias_correction2, dtype)
        root = ops.sqrt(v_hat + _as(spec.eps_root, dtype)) if spec.eps_root else ops.sqrt(v_hat)
        return 1.0 / (root + eps)

    def get_config(self):
        """Every option (Keras' and the spec's); ``RAdam.from_config`` rebuilds an
        equal optimizer.  A float learning rate is reported exactly as given while
        the Keras variable still holds its rounding to floatx."""
        config = super().get_config()
        lr_var = self._learning_rate
        if self._exact_lr is not None and isinstance(lr_var, keras.Variable):
            held = np.asarray(ops.convert_to_numpy(lr_var))
            if held == np.asarray(self._exact_lr).astype(held.dtype):
                config["learning_rate"] = self._exact_lr
        config.update(
            profile=self.profile,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            weight_decay=self._spec.weight_decay,
            **{axis: getattr(self._spec, axis) for axis in AXES},
        )
        return config
