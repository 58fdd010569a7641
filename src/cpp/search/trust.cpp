#include "search/trust.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gp/subset.h"

namespace gprdimer {

// Both scans run from the newest observation back: a trial lies near the latest observations
// (the inner loop starts from one), so the scan mostly ends at the first; the inner loop checks
// every trial, and a scan over all observations was most of its time (xTB, 16 atoms).
bool outside_ratio_window(const SurrogateModel& model, const Features& trial, double ratio) {
  const double limit = std::abs(std::log(ratio));
  const Eigen::ArrayXd log_trial = trial.f.array().log();
  for (auto obs = model.features.rbegin(); obs != model.features.rend(); ++obs) {
    const double worst = (obs->f.array().log() - log_trial).abs().maxCoeff();
    if (worst <= limit) return false;
  }
  return true;
}

bool within_transport_radius(const SurrogateModel& model, const PositionsRef& trial,
                             double radius) {
  for (auto obs = model.configurations.rbegin(); obs != model.configurations.rend(); ++obs)
    if (transport_distance(trial, *obs, model.geometry.symbols()) <= radius) return true;
  return false;
}

bool outside_trust_region(const SurrogateModel& model, const PositionsRef& trial,
                          const TrustSettings& s) {
  if (s.ratio_window &&
      outside_ratio_window(model, model.geometry.compute(trial), s.ratio_at_limit))
    return true;
  if (s.radius > 0.0 && !within_transport_radius(model, trial, s.radius)) return true;
  if (s.max_variance > 0.0) {
    Eigen::VectorXd g;
    double variance = 0.0;
    model.evaluate(trial, g, &variance);
    return variance > s.max_variance;
  }
  return false;
}

double step_limit_factor(const InverseDistances& geometry, const PositionsRef& positions,
                         const Eigen::VectorXd& step, double ratio_at_limit) {
  const int N = geometry.n_atoms();
  std::vector<double> nearest(N, std::numeric_limits<double>::infinity());
  for (int i = 0; i < N; ++i)
    for (int j = i + 1; j < N; ++j) {
      const double r = geometry.displacement(positions, i, j).norm();
      nearest[i] = std::min(nearest[i], r);
      nearest[j] = std::min(nearest[j], r);
    }
  double factor = 1.0;
  const auto& moving = geometry.moving_atoms();
  for (int m = 0; m < static_cast<int>(moving.size()); ++m) {
    const double limit = 0.99 * 0.5 * (1.0 - ratio_at_limit) * nearest[moving[m]];
    const double len = step.segment<3>(3 * m).norm();
    if (len > limit) factor = std::min(factor, limit / len);
  }
  return factor;
}

double adaptive_trust_radius(int n_observations, int n_atoms) {
  const double grown =
      0.15 + 0.35 * (1.0 - std::exp(-std::log(2.0) * n_observations / 50.0));
  return std::min(grown, std::max(0.25, 1.3 / std::sqrt(static_cast<double>(n_atoms))));
}

}  // namespace gprdimer
