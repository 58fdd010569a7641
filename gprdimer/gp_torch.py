"""Optional gpytorch backend of the GP model in docs/model.md, for GPUs and large systems.

The model is the one of the C++ core; only the machinery differs:

- A custom ``gpytorch.kernels.Kernel`` returns the joint covariance of energies and gradients,
  ``num_outputs_per_input = D + 1``, point-major ([E_a, g_a] contiguous for each configuration,
  which is gpytorch's interleaved multitask layout). Its inputs are the flattened positions of
  *all* atoms (3N values) so that every configuration carries its own fixed-atom positions; its
  outputs differentiate with respect to the moving coordinates only.
- The kernel blocks are computed from the explicit formulas of model.md (not by autograd through
  k): dense batched Jacobians and one matrix product for all J_a^T Theta J_b, which is what runs
  well on a GPU. The hyperparameter gradient, by contrast, comes from torch autograd, so that
  ``objective`` is an independent check of the analytic gradient of the C++ core.
- The likelihood is gpytorch's multitask Gaussian likelihood with one global noise, frozen at
  ``noise``. Every factorisation is an exact Cholesky (no CG/Lanczos) with the retries of model.md
  and the core: 8 tries, the first without jitter, then 1e-8 * max(1, mean diag K), x10 per retry.
- MAP training uses torch.optim.LBFGS with a strong-Wolfe line search on (log sigma_m^2, log l_t),
  the priors of model.md added to the loss, from the model.md initial values or a warm start.

torch and gpytorch are imported on first use, so that ``import gprdimer.gp_torch`` works without
them.
"""

import contextlib
import math
import warnings

import numpy as np

from .errors import GPError
from .gp_torch_kernel import QUARTILE, Geometry, load_backend
from .gp_torch_training import MapTraining

KEPT_SHARE = 0.75  # the core's kKeptShare (gp/gaussian_process.cpp)


def forget_oldest(observations, rows_each, max_rows):
    """As the core: past `max_rows` rows the oldest observations go, down to three quarters."""
    if max_rows and len(observations[0]) * rows_each > max_rows:
        keep = max(2, int(KEPT_SHARE * max_rows) // rows_each)
        for values in observations:
            del values[:-keep]


class TorchGaussianProcess(MapTraining):
    """The GP of docs/model.md on torch/gpytorch: the core's data, hyperparameters and predictions.

    ``dtype=None`` means torch.float64. ``fixed`` is a boolean mask or a list of atom indices. A
    cell without ``pbc`` is periodic in all three directions.

    sigma_c^2 follows the data (max(1, mean(E - E_1)^2)) until the first ``train()`` or an explicit
    assignment; ``train()`` then fixes it to the data it sees, and it stays fixed until the next
    ``train()`` or assignment. Before any training or assignment of ``log_hyperparameters``, the
    data-driven initial values of model.md are used.
    """

    def __init__(self, symbols, fixed=None, cell=None, pbc=None, *, noise=1e-5, prior_dof=28.0,
                 variance_barrier=False, max_rows=0, device=None, dtype=None):
        backend = load_backend()
        torch = backend.torch
        self._b = backend
        self._dtype = torch.float64 if dtype is None else dtype
        self._device = torch.device("cpu") if device is None else torch.device(device)
        self.symbols = list(symbols)
        self.noise = float(noise)
        self.prior_dof = float(prior_dof)
        self.variance_barrier = bool(variance_barrier)
        self.max_rows = int(max_rows)  # the core's bound on the covariance (0: none)
        self._geometry = Geometry(torch, self.symbols, fixed, cell, pbc, self._dtype, self._device)
        self._kernel = backend.InverseDistanceKernel(
            self._geometry, len(self._geometry.type_names), self._dtype, self._device
        )
        self._likelihood = backend.gpytorch.likelihoods.MultitaskGaussianLikelihood(
            num_tasks=self._geometry.dims + 1,
            rank=0,
            has_global_noise=True,
            has_task_noise=False,
            # No transform, so that the noise is exactly the value set (fixed, model.md).
            noise_constraint=backend.gpytorch.constraints.GreaterThan(0.0, transform=None),
        ).to(dtype=self._dtype, device=self._device)
        self._likelihood.noise = torch.tensor([self.noise], dtype=self._dtype, device=self._device)
        self._likelihood.raw_noise.requires_grad_(False)
        self._positions = []
        self._energies = []
        self._gradients = []
        self._model = None
        self._have_hyperparameters = False
        self._sigma_c2_fixed = None
        self._prediction_jitter = None

    # ---------------------------------------------------------------- data

    @property
    def n_observations(self):
        return len(self._energies)

    @property
    def type_names(self):
        """Pair types as "A-B" (sorted element symbols), in the order of their length scales."""
        return ["-".join(name) for name in self._geometry.type_names]

    @property
    def configurations(self):
        """The observed positions, (N, 3) each."""
        return [p.reshape(-1, 3) for p in self._positions]

    def add(self, positions, energy, forces):
        """One observation: positions (N, 3) in Angstrom, energy in eV, forces (N, 3) in eV/A."""
        positions = np.asarray(positions, dtype=float)
        forces = np.asarray(forces, dtype=float)
        n = self._geometry.n_atoms
        if positions.shape != (n, 3) or forces.shape != (n, 3):
            raise ValueError(f"positions and forces must have shape ({n}, 3)")
        if not (np.isfinite(energy) and np.isfinite(positions).all() and np.isfinite(forces).all()):
            raise ValueError("positions, energy and forces must be finite")
        self._positions.append(positions.ravel())
        self._energies.append(float(energy))
        self._gradients.append(-forces[self._geometry.moving].ravel())
        forget_oldest((self._positions, self._energies, self._gradients),
                      self._geometry.dims + 1, self.max_rows)
        x = self._tensor(np.array(self._positions))
        y_E = np.array(self._energies) - self._energies[0]
        y = self._tensor(np.column_stack([y_E, np.array(self._gradients)]))
        if self._model is None:
            self._model = self._b.ExactModel(x, y, self._likelihood, self._kernel)
        else:
            self._model.set_train_data(x, y, strict=False)
        self._invalidate()

    def _tensor(self, value):
        return self._b.torch.as_tensor(value, dtype=self._dtype, device=self._device)

    def _require_data(self):
        if not self._energies:
            raise GPError("the GP has no observations")

    # ------------------------------------------------------ hyperparameters

    @property
    def sigma_c2(self):
        if self._sigma_c2_fixed is not None:
            return self._sigma_c2_fixed
        if not self._energies:
            return 1.0
        return self._data_sigma_c2()

    @sigma_c2.setter
    def sigma_c2(self, value):
        value = float(value)
        if not (value > 0.0 and math.isfinite(value)):
            raise ValueError("sigma_c2 must be positive and finite")
        self._sigma_c2_fixed = value
        self._invalidate()

    def _data_sigma_c2(self):
        y_E = np.array(self._energies) - self._energies[0]
        return max(1.0, float(np.mean(y_E)) ** 2)

    def _prior_scales(self):
        y_E = np.array(self._energies) - self._energies[0]
        s_E2 = max(1.0, (float(np.ptp(y_E)) / 3.0) ** 2)
        with self._b.torch.no_grad():
            f, _ = self._geometry.features(self._model.train_inputs[0])
            range_x2 = float((2.0 * ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)).max())
        return s_E2, max(1.0, range_x2 / 9.0)

    def _initial(self):
        s_E2, s_x2 = self._prior_scales()
        n_types = len(self._geometry.type_names)
        log_l = math.log(QUARTILE * math.sqrt(s_x2))
        return np.concatenate([[math.log(QUARTILE**2 * s_E2)], np.full(n_types, log_l)])

    @property
    def log_hyperparameters(self):
        """(log sigma_m^2, log l_1, ..., log l_T); empty before any training or assignment."""
        if not self._have_hyperparameters:
            return np.empty(0)
        return self._kernel.log_hyper.detach().cpu().numpy().copy()

    @log_hyperparameters.setter
    def log_hyperparameters(self, value):
        value = np.asarray(value, dtype=float)
        expected = 1 + len(self._geometry.type_names)
        if value.shape != (expected,):
            raise ValueError(f"expected {expected} log hyperparameters, got shape {value.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError("log hyperparameters are not finite")
        self._set_w(value)
        self._have_hyperparameters = True

    def reset_hyperparameters(self):
        """Forget the fitted hyperparameters: the next train() starts from the data."""
        self._have_hyperparameters = False
        self._invalidate()

    def _set_w(self, w):
        with self._b.torch.no_grad():
            self._kernel.log_hyper.copy_(self._tensor(w))
        self._invalidate()

    def _invalidate(self):
        # gpytorch caches the factor of the training covariance for predictions; drop it.
        if self._model is not None:
            self._model.prediction_strategy = None
        self._prediction_jitter = None

    def _ensure_hyperparameters(self):
        self._require_data()
        if not self._have_hyperparameters:
            self._set_w(self._initial())
            self._have_hyperparameters = True

    # ------------------------------------------------------------ numerics

    def _jitter(self):
        """The first jitter of model.md, 1e-8 * max(1, mean diag K), at the current parameters."""
        with self._b.torch.no_grad():
            diagonal = self._kernel(self._model.train_inputs[0], diag=True)
            mean_diag = float(diagonal.mean()) + self.noise
        return 1e-8 * max(1.0, mean_diag)

    @contextlib.contextmanager
    def _exact_linear_algebra(self, jitter):
        """Exact Cholesky everywhere: a plain try, then 7 with jitter, x10 per retry."""
        b = self._b
        with contextlib.ExitStack() as stack:
            stack.enter_context(b.gpytorch.settings.max_cholesky_size(2**62))
            stack.enter_context(b.gpytorch.settings.fast_computations(False, False, False))
            # With unbounded Cholesky sizes and no root decompositions, gpytorch's "fast" predictive
            # variance is exact: it caches L^-1 of the training covariance instead of refactorising
            # that matrix at every prediction.
            stack.enter_context(b.gpytorch.settings.fast_pred_var(True))
            stack.enter_context(b.linear_operator.settings.cholesky_jitter(jitter, jitter))
            stack.enter_context(b.linear_operator.settings.cholesky_max_tries(7))
            stack.enter_context(warnings.catch_warnings())
            # The jitter retries are part of the model, not something to warn about.
            warnings.simplefilter("ignore", b.linear_operator.utils.warnings.NumericalWarning)
            yield

    def _loss(self, scales):
        """L(w) at the kernel's current parameters, as a torch scalar (may be +inf)."""
        torch = self._b.torch
        w = self._kernel.log_hyper
        log2 = math.log(2.0)
        if self.variance_barrier and float(w[0].detach()) >= log2:
            return self._tensor(math.inf)
        self._kernel.sigma_c2.fill_(self.sigma_c2)
        self._model.train()
        self._likelihood.train()
        try:
            with self._exact_linear_algebra(self._jitter()):
                marginal = self._likelihood(self._model(self._model.train_inputs[0]))
                value = -marginal.log_prob(self._model.train_targets)
        except self._b.factor_errors:
            return self._tensor(math.inf)
        s_E2, s_x2 = scales
        nu = self.prior_dof
        log_prior = -0.5 * (nu + 1.0) * torch.log1p(torch.exp(w[0]) / (nu * s_E2)) + 0.5 * w[0]
        log_prior = log_prior + (-torch.exp(2.0 * w[1:]) / (2.0 * s_x2) + w[1:]).sum()
        value = value - log_prior
        if self.variance_barrier:
            strength = min(0.5, 1e-4 + 1e-3 * self.n_observations)
            value = value - strength * torch.log(log2 - w[0])
        return value

    # ---------------------------------------------------------- prediction

    def predict(self, positions):
        """Energy (eV, absolute), forces (N, 3; zero on fixed atoms), latent energy variance."""
        self._ensure_hyperparameters()
        torch = self._b.torch
        positions = np.asarray(positions, dtype=float)
        n = self._geometry.n_atoms
        if positions.shape != (n, 3):
            raise ValueError(f"positions must have shape ({n}, 3)")
        x = self._tensor(positions.reshape(1, -1))
        self._kernel.sigma_c2.fill_(self.sigma_c2)
        self._model.eval()
        self._likelihood.eval()
        try:
            if self._prediction_jitter is None:
                self._prediction_jitter = self._jitter()
            with torch.no_grad(), self._exact_linear_algebra(self._prediction_jitter):
                # Predicting at an observed configuration is legitimate here (the dimer does).
                warnings.simplefilter("ignore", self._b.gpytorch.utils.warnings.GPInputWarning)
                latent = self._model(x)
                mean = latent.mean[0].cpu().numpy()
                variance = float(latent.lazy_covariance_matrix.diagonal()[0])
        except self._b.factor_errors as exc:
            self._invalidate()
            raise GPError(f"the covariance matrix could not be factorised: {exc}") from exc
        forces = np.zeros((n, 3))
        forces[self._geometry.moving] = -mean[1:].reshape(-1, 3)
        return self._energies[0] + float(mean[0]), forces, variance
