"""The torch side of the gpytorch backend (gp_torch.py): the import of torch and gpytorch on
first use, the joint energy-and-gradient kernel and exact model that subclass theirs, and the
inverse-distance features with their dense Jacobian."""

import numpy as np

INSTALL_HINT = (
    "the gpytorch backend needs torch and gpytorch: install torch 2.13.0 first "
    "(CPU: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu), "
    "then pip install gprdimer[torch]"
)
# Phi^-1(0.75): the GPstuff quartile convention of the initial hyperparameters.
QUARTILE = 0.6744897501960817
_backend = None


def load_backend():
    """Import torch/gpytorch once and build the classes that subclass theirs."""
    global _backend
    if _backend is not None:
        return _backend
    try:
        import gpytorch
        import linear_operator
        import torch
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc

    class InverseDistanceKernel(gpytorch.kernels.Kernel):
        """Joint energy+gradient covariance of the inverse-distance squared exponential."""

        def __init__(self, geometry, n_types, dtype, device):
            super().__init__()
            self.geometry = geometry
            log_hyper = torch.zeros(1 + n_types, dtype=dtype, device=device)
            self.register_parameter("log_hyper", torch.nn.Parameter(log_hyper))
            self.register_buffer("sigma_c2", torch.ones((), dtype=dtype, device=device))

        @property
        def block_size(self):
            return self.geometry.dims + 1

        def num_outputs_per_input(self, x1, x2):
            return self.block_size

        def _theta2(self):
            return torch.exp(-2.0 * self.log_hyper[1:])[self.geometry.type_index]

        def forward(self, x1, x2, diag=False, **params):
            f1, J1 = self.geometry.features(x1)
            f2, J2 = self.geometry.features(x2)
            theta2 = self._theta2()
            sigma_m2 = torch.exp(self.log_hyper[0])
            if diag:
                return self._diagonal(f1, J1, f2, J2, theta2, sigma_m2)
            n1, n2, D = f1.shape[0], f2.shape[0], self.geometry.dims
            delta = f1[:, None, :] - f2[None, :, :]
            u = theta2 * delta
            k = sigma_m2 * torch.exp(-(u * delta).sum(-1))
            Jt_u_1 = torch.einsum("abp,apd->abd", u, J1)  # J(x_a)^T u_ab
            Jt_u_2 = torch.einsum("abp,bpd->abd", u, J2)  # J(x_b)^T u_ab
            # All J_a^T Theta J_b at once, as one (n1 D) x P by P x (n2 D) product.
            left = (J1 * theta2[None, :, None]).transpose(1, 2).reshape(n1 * D, -1)
            right = J2.transpose(0, 1).reshape(-1, n2 * D)
            jtj = (left @ right).reshape(n1, D, n2, D).permute(0, 2, 1, 3)
            outer = Jt_u_1[..., :, None] * Jt_u_2[..., None, :]
            gg = 2.0 * k[..., None, None] * jtj - 4.0 * k[..., None, None] * outer
            top = torch.cat([(self.sigma_c2 + k)[..., None], 2.0 * k[..., None] * Jt_u_2], dim=-1)
            bottom = torch.cat([-2.0 * k[..., None, None] * Jt_u_1[..., :, None], gg], dim=-1)
            blocks = torch.cat([top[..., None, :], bottom], dim=-2)  # (n1, n2, D+1, D+1)
            return blocks.permute(0, 2, 1, 3).reshape(n1 * (D + 1), n2 * (D + 1))

        def _diagonal(self, f1, J1, f2, J2, theta2, sigma_m2):
            """Diagonal of the blocks of aligned pairs (x1[a], x2[a]), flattened point-major."""
            delta = f1 - f2
            u = theta2 * delta
            k = sigma_m2 * torch.exp(-(u * delta).sum(-1))
            Jt_u_1 = torch.einsum("ap,apd->ad", u, J1)
            Jt_u_2 = torch.einsum("ap,apd->ad", u, J2)
            jtj = (J1 * theta2[None, :, None] * J2).sum(1)
            gg = 2.0 * k[:, None] * jtj - 4.0 * k[:, None] * Jt_u_1 * Jt_u_2
            return torch.cat([(self.sigma_c2 + k)[:, None], gg], dim=-1).reshape(-1)

    class ExactModel(gpytorch.models.ExactGP):
        def __init__(self, train_x, train_y, likelihood, kernel):
            super().__init__(train_x, train_y, likelihood)
            self.covar_module = kernel

        def forward(self, x):
            # Zero prior mean: energies are referenced to the first observation instead.
            mean = x.new_zeros(x.shape[0], self.covar_module.block_size)
            return gpytorch.distributions.MultitaskMultivariateNormal(mean, self.covar_module(x))

    class Backend:
        pass

    _backend = Backend()
    _backend.torch = torch
    _backend.gpytorch = gpytorch
    _backend.linear_operator = linear_operator
    _backend.InverseDistanceKernel = InverseDistanceKernel
    _backend.ExactModel = ExactModel
    # What a failed factorisation raises: not positive definite after every jitter, or NaN entries.
    errors = linear_operator.utils.errors
    _backend.factor_errors = (errors.NotPSDError, errors.NanError)
    return _backend


class Geometry:
    """Pairs, types and the features (inverse distances) with their dense Jacobian, in torch."""

    def __init__(self, torch, symbols, fixed, cell, pbc, dtype, device):
        self.torch = torch
        n = len(symbols)
        is_fixed = np.zeros(n, dtype=bool)
        if fixed is not None:
            fixed = np.asarray(fixed)
            if fixed.dtype == bool:
                if fixed.shape != (n,):
                    raise ValueError(f"fixed mask has {fixed.size} entries for {n} atoms")
                is_fixed = fixed.copy()
            else:
                is_fixed[fixed.astype(int)] = True
        if is_fixed.all():
            raise ValueError("every atom is fixed: nothing can move")
        self.n_atoms = n
        self.fixed = is_fixed
        self.moving = np.flatnonzero(~is_fixed)
        self.dims = 3 * len(self.moving)
        moving_index = -np.ones(n, dtype=int)
        moving_index[self.moving] = np.arange(len(self.moving))

        pairs, types, self.type_names = [], [], []
        for i in range(n):
            for j in range(i + 1, n):
                if is_fixed[i] and is_fixed[j]:
                    continue  # constant: carries no information
                name = tuple(sorted((symbols[i], symbols[j])))
                if name not in self.type_names:
                    self.type_names.append(name)
                pairs.append((i, j))
                types.append(self.type_names.index(name))
        if not pairs:
            raise ValueError("a GP on inverse distances needs at least two atoms")
        # sign[p, a] = d f_p / d x_a up to the vector q_p: -1 for atom i, +1 for atom j.
        sign = np.zeros((len(pairs), len(self.moving)))
        for p, (i, j) in enumerate(pairs):
            if moving_index[i] >= 0:
                sign[p, moving_index[i]] = -1.0
            if moving_index[j] >= 0:
                sign[p, moving_index[j]] = 1.0
        as_tensor = lambda a, dt=dtype: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
        self.i = as_tensor([p[0] for p in pairs], torch.long)
        self.j = as_tensor([p[1] for p in pairs], torch.long)
        self.type_index = as_tensor(types, torch.long)
        self.sign = as_tensor(sign)

        self.cell = None
        if cell is not None:
            cell = np.asarray(cell, dtype=float)
            if cell.shape == (3,):
                cell = np.diag(cell)
            # A cell without pbc means periodic in all three directions (as the NumPy reference).
            periodic = np.ones(3, dtype=bool)
            if pbc is not None:
                periodic = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
            if periodic.any():
                if abs(np.linalg.det(cell)) < 1e-12:
                    raise ValueError("periodic boundary conditions need a cell of non-zero volume")
                self.cell = as_tensor(cell)
                self.inverse_cell = as_tensor(np.linalg.inv(cell))
                self.periodic = as_tensor(periodic.astype(float))
        elif pbc is not None and np.any(pbc):
            raise ValueError("periodic boundary conditions need a cell")

    def features(self, x):
        """f (n, P) and J (n, P, D) for flattened positions x (n, 3N)."""
        pos = x.reshape(x.shape[0], self.n_atoms, 3)
        d = pos[:, self.i] - pos[:, self.j]
        if self.cell is not None:
            s = d @ self.inverse_cell
            s = s - self.torch.round(s) * self.periodic
            d = s @ self.cell
        r = self.torch.linalg.norm(d, dim=-1)
        q = d / r[..., None] ** 3
        J = self.torch.einsum("npc,pa->npac", q, self.sign).reshape(x.shape[0], -1, self.dims)
        return 1.0 / r, J
