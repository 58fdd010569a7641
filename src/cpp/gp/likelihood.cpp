#include "gp/likelihood.h"

#include <cmath>
#include <limits>

namespace gprdimer {

namespace {
constexpr double kQuartile = 0.6744897501960817;  // Phi^-1(0.75)
constexpr double kLog2Pi = 1.8378770664093453;
}  // namespace

PriorScales prior_scales(const std::vector<const Features*>& obs, const Eigen::VectorXd& energies) {
  PriorScales s;
  if (energies.size() > 0) {
    const double range = energies.maxCoeff() - energies.minCoeff();
    s.s_E2 = std::max(1.0, range * range / 9.0);
  }
  double range_x2 = 0.0;
  for (size_t a = 0; a < obs.size(); ++a)
    for (size_t b = a + 1; b < obs.size(); ++b)
      range_x2 = std::max(range_x2, 2.0 * (obs[a]->f - obs[b]->f).squaredNorm());
  s.s_x2 = std::max(1.0, range_x2 / 9.0);
  return s;
}

Eigen::VectorXd initial_log_hyperparameters(const PriorScales& scales, int n_types) {
  Eigen::VectorXd w(1 + n_types);
  w[0] = std::log(kQuartile * kQuartile * scales.s_E2);
  w.tail(n_types).setConstant(std::log(kQuartile * std::sqrt(scales.s_x2)));
  return w;
}

double map_objective(const TrainingData& data, const PriorSettings& settings,
                     const Eigen::VectorXd& log_w, Eigen::VectorXd* grad,
                     ObjectiveWorkspace* work) {
  const double inf = std::numeric_limits<double>::infinity();
  const int nw = static_cast<int>(log_w.size());
  if (grad) grad->setZero(nw);
  double barrier_strength = 0.0;
  const double log2 = std::log(2.0);
  if (settings.variance_barrier) {
    barrier_strength = std::min(0.5, 1e-4 + 1e-3 * static_cast<double>(data.obs.size()));
    if (log_w[0] >= log2) return inf;
  }
  if (!log_w.allFinite()) return inf;

  ObjectiveWorkspace local;
  ObjectiveWorkspace& ws = work ? *work : local;
  const Kernel kernel(*data.geometry, log_w, data.sigma_c2);
  if (ws.factored_at.size() != nw || ws.factored_at != log_w) {  // a local workspace never matches
    factor_covariance(kernel, data.obs, settings.noise, ws.factor);
    ws.factored_at = log_w;
  }
  const Factor& factor = ws.factor;
  if (!factor.ok) return inf;
  const auto L = factor.lower();
  const Eigen::VectorXd beta = L.solve(data.y);
  const double n = static_cast<double>(data.y.size());
  double value = 0.5 * beta.squaredNorm() + factor.active().diagonal().array().log().sum() + 0.5 * n * kLog2Pi;

  // Log prior (and its gradient) in the log parametrisation, Jacobians included.
  const double nu = settings.prior_dof;
  const double ratio = std::exp(log_w[0]) / (nu * data.scales.s_E2);
  value -= -0.5 * (nu + 1.0) * std::log1p(ratio) + 0.5 * log_w[0];
  for (int t = 1; t < nw; ++t)
    value -= -std::exp(2.0 * log_w[t]) / (2.0 * data.scales.s_x2) + log_w[t];
  if (settings.variance_barrier) value -= barrier_strength * std::log(log2 - log_w[0]);
  if (!std::isfinite(value)) return inf;
  if (!grad) return value;

  // W = K^-1 - alpha alpha^T, from the factor: K^-1 = L^-T L^-1.
  Eigen::MatrixXd& W = ws.W;
  inverse_from_factor(factor.active(), ws.Linv, W);
  const Eigen::VectorXd alpha = factor.active().transpose().triangularView<Eigen::Upper>().solve(beta);
  W.selfadjointView<Eigen::Lower>().rankUpdate(alpha, -1.0);
  W.triangularView<Eigen::StrictlyUpper>() = W.transpose();

  const int m = kernel.block_size();
  const int M = static_cast<int>(data.obs.size());
  for (int a = 0; a < M; ++a)
    for (int b = a; b < M; ++b)
      kernel.contract_derivatives(*data.obs[a], *data.obs[b], W.block(a * m, b * m, m, m),
                                  a == b ? 0.5 : 1.0, *grad);

  (*grad)[0] -= -0.5 * (nu + 1.0) * ratio / (1.0 + ratio) + 0.5;
  for (int t = 1; t < nw; ++t) (*grad)[t] -= -std::exp(2.0 * log_w[t]) / data.scales.s_x2 + 1.0;
  if (settings.variance_barrier) (*grad)[0] += barrier_strength / (log2 - log_w[0]);
  if (!grad->allFinite()) {
    grad->setZero();
    return inf;
  }
  return value;
}

}  // namespace gprdimer
