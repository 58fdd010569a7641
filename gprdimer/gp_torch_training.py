"""MAP training of the gpytorch backend's hyperparameters (torch.optim.LBFGS, strong Wolfe), and
its objective with the gradient by autograd: the part of TorchGaussianProcess that fits."""

import math

import numpy as np

from .training_report import TrainingReport


class MapTraining:
    """Mixed into TorchGaussianProcess, whose data, kernel and loss it uses."""

    def objective(self, w=None):
        """MAP objective L(w) and its gradient by torch autograd, on all observations.

        w defaults to the current hyperparameters; sigma_c^2 is the current ``sigma_c2`` and the
        prior scales come from the data. The model is left as it was. (inf, zeros) where undefined.
        """
        self._require_data()
        saved = self._kernel.log_hyper.detach().clone()
        if w is None:
            w = self.log_hyperparameters if self._have_hyperparameters else self._initial()
        self._set_w(np.asarray(w, dtype=float))
        try:
            self._kernel.log_hyper.grad = None
            loss = self._loss(self._prior_scales())
            if not bool(self._b.torch.isfinite(loss)):
                return math.inf, np.zeros(len(saved))
            loss.backward()
            grad = self._kernel.log_hyper.grad.detach().cpu().numpy().copy()
            return float(loss.detach()), grad
        finally:
            self._kernel.log_hyper.grad = None
            self._set_w(saved)

    def train(self, max_iterations=200):
        """MAP fit of the hyperparameters on all observations (LBFGS), warm-started.

        Fixes sigma_c^2 to the data first. A warm start that scores worse than the data-driven
        initial values (barrier crossed, factor failed, a plateau) gives way to them, as does a
        failed fit with no hyperparameters yet. Returns the core's TrainingReport.
        """
        self._require_data()
        self._sigma_c2_fixed = self._data_sigma_c2()
        scales = self._prior_scales()
        start, reinitialised = self._initial(), False
        if self._have_hyperparameters:
            warm = self.log_hyperparameters
            if self.objective(warm)[0] <= self.objective(start)[0]:
                start = warm
            else:
                reinitialised = True
        value, w, iterations, evaluations = self._minimise(start, scales, max_iterations)
        failed = not math.isfinite(value)
        self._set_w(start if failed else w)
        self._have_hyperparameters = True
        return TrainingReport(
            iterations=iterations,
            evaluations=evaluations,
            converged=not failed and iterations < max_iterations,
            failed=failed,
            reinitialised=reinitialised,
            objective=value,
            subset=tuple(range(self.n_observations)),
        )

    def _minimise(self, start, scales, max_iterations):
        """LBFGS from start: (best value, its w, iterations, evaluations)."""
        torch = self._b.torch
        self._set_w(start)
        param = self._kernel.log_hyper
        best = {"value": math.inf, "w": np.asarray(start, dtype=float)}
        # Where L is +inf the line search gets a large finite value instead: with inf its cubic
        # interpolation yields NaN steps.
        penalty = None

        def closure():
            nonlocal penalty
            optimizer.zero_grad()
            loss = self._loss(scales)
            value = float(loss.detach())
            if math.isfinite(value):
                loss.backward()
                if value < best["value"]:
                    best["value"], best["w"] = value, param.detach().cpu().numpy().copy()
                if penalty is None:
                    penalty = abs(value) + 1e10
                return loss.detach()
            param.grad = torch.zeros_like(param)
            return self._tensor(1e10 if penalty is None else penalty)

        optimizer = torch.optim.LBFGS(
            [param], lr=1.0, max_iter=max_iterations, line_search_fn="strong_wolfe",
            tolerance_grad=1e-9, tolerance_change=1e-12, history_size=20,
        )
        optimizer.step(closure)
        state = optimizer.state[param]
        # LBFGS may end on a line-search trial point; the best point it evaluated is kept.
        iterations, evaluations = int(state.get("n_iter", 0)), int(state.get("func_evals", 0))
        return best["value"], best["w"], iterations, evaluations
