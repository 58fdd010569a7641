#include "gp/gaussian_process.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "gp/subset.h"

namespace gprdimer {

namespace {
// Without a memory bound, room the factor's storage keeps for this many further observations
// when it must grow (copying the whole factor into a fresh allocation at every observation was
// most of an addition's time). With one, the storage is the bound's from the start.
constexpr int kReserveObservations = 8;
// Past max_rows the oldest observations go down to this share of it: one refactorisation then
// serves the next quarter of the bound's observations, each added by extending the factor.
constexpr double kKeptShare = 0.75;
}  // namespace

GaussianProcess::GaussianProcess(InverseDistances geometry, GPSettings settings)
    : geometry_(std::move(geometry)), settings_(settings) {}

std::vector<int> GaussianProcess::all_observations() const {
  std::vector<int> all(n_observations());
  for (int i = 0; i < n_observations(); ++i) all[i] = i;
  return all;
}

void GaussianProcess::add(const PositionsRef& positions, double energy, const PositionsRef& forces) {
  if (!std::isfinite(energy)) throw std::invalid_argument("energy is not finite");
  if (forces.rows() != geometry_.n_atoms())
    throw std::invalid_argument("forces have " + std::to_string(forces.rows()) + " rows for " +
                                std::to_string(geometry_.n_atoms()) + " atoms");
  if (!positions.allFinite()) throw std::invalid_argument("positions are not finite");
  const Eigen::VectorXd g = -geometry_.moving_coordinates(forces);
  if (!g.allFinite()) throw std::invalid_argument("forces are not finite");
  Features feat = geometry_.compute(positions);

  configs_.emplace_back(positions);
  features_.push_back(std::move(feat));
  energies_.push_back(energy);
  gradients_.push_back(g);

  const int m = geometry_.dims() + 1;
  if (settings_.max_rows > 0 && n_observations() * m > settings_.max_rows) {
    forget_oldest();
    return;
  }
  if (!model_ready_) return;
  // Fixed hyperparameters: extend the factor by the new rows instead of refactorising.
  const Kernel kernel(geometry_, log_w_, sigma_c2_);
  const int M = n_observations();
  Eigen::MatrixXd B(m * (M - 1), m), C(m, m);
  for (int a = 0; a < M - 1; ++a) kernel.block(features_[a], features_.back(), B.block(a * m, 0, m, m));
  kernel.block(features_.back(), features_.back(), C);
  C.diagonal().array() += settings_.prior.noise;
  factor_.reserve(factor_capacity(M * m));
  if (append_to_factor(factor_, B, C)) {
    refresh_weights();
  } else {
    rebuild();
  }
}

void GaussianProcess::forget_oldest() {
  const int m = geometry_.dims() + 1;
  const int keep = std::max(2, static_cast<int>(kKeptShare * settings_.max_rows) / m);
  const int drop = n_observations() - keep;
  if (drop <= 0) return;
  configs_.erase(configs_.begin(), configs_.begin() + drop);
  features_.erase(features_.begin(), features_.begin() + drop);
  energies_.erase(energies_.begin(), energies_.begin() + drop);
  gradients_.erase(gradients_.begin(), gradients_.begin() + drop);
  model_ready_ = false;  // the next use refactorises the kept observations in the same storage
}

Eigen::VectorXd GaussianProcess::targets(const std::vector<int>& subset) const {
  const int m = geometry_.dims() + 1;
  Eigen::VectorXd y(m * subset.size());
  for (size_t s = 0; s < subset.size(); ++s) {
    y[s * m] = energies_[subset[s]] - energies_.front();
    y.segment(s * m + 1, m - 1) = gradients_[subset[s]];
  }
  return y;
}

TrainingData GaussianProcess::training_data(const std::vector<int>& subset) const {
  TrainingData td;
  td.geometry = &geometry_;
  Eigen::VectorXd e(subset.size());
  for (size_t s = 0; s < subset.size(); ++s) {
    td.obs.push_back(&features_[subset[s]]);
    e[s] = energies_[subset[s]] - energies_.front();
  }
  td.y = targets(subset);
  td.sigma_c2 = sigma_c2_;
  td.scales = prior_scales(td.obs, e);
  return td;
}

double GaussianProcess::objective(const Eigen::VectorXd& log_w, Eigen::VectorXd* grad) const {
  if (features_.empty()) throw std::runtime_error("the GP has no observations");
  const std::vector<int> all = all_observations();
  return map_objective(training_data(all), settings_.prior, log_w, grad);
}

void GaussianProcess::ensure_hyperparameters() {
  if (features_.empty()) throw std::runtime_error("the GP has no observations");
  if (have_hyperparameters_) return;
  const std::vector<int> all = all_observations();
  double mean = 0.0;
  for (double e : energies_) mean += e - energies_.front();
  mean /= static_cast<double>(energies_.size());
  sigma_c2_ = std::max(1.0, mean * mean);
  log_w_ = initial_log_hyperparameters(training_data(all).scales, geometry_.n_types());
  have_hyperparameters_ = true;
}

TrainingReport GaussianProcess::train() {
  if (features_.empty()) throw std::runtime_error("train() needs at least one observation");
  const int M = n_observations();
  double mean = 0.0;
  for (double e : energies_) mean += e - energies_.front();
  mean /= M;
  const double previous_c2 = sigma_c2_;
  sigma_c2_ = std::max(1.0, mean * mean);

  TrainingReport report;
  const int k = settings_.training_subset;
  if (k > 0 && k < M) {
    report.subset = farthest_point_subset(configs_, geometry_.symbols(), k, settings_.latest);
  } else {
    report.subset = all_observations();
  }
  const TrainingData td = training_data(report.subset);
  const Objective f = [&](const Eigen::VectorXd& w, Eigen::VectorXd& g) {
    return map_objective(td, settings_.prior, w, &g, &training_buffers_);
  };
  // Warm start, unless the data-driven start scores better: a warm start that is unusable
  // (barrier crossed, factor failed) or ran off onto a plateau of the objective (every kernel
  // term vanishing) would otherwise keep the fit there, as the optimiser stops at its first
  // short step.
  Eigen::VectorXd start = initial_log_hyperparameters(td.scales, geometry_.n_types());
  training_buffers_.forget();  // new data since the last training
  bool warm = false;
  if (have_hyperparameters_) {
    const double fresh = map_objective(td, settings_.prior, start, nullptr, &training_buffers_);
    // the warm start second, so that its factor is the one the optimiser's first step reuses
    warm = map_objective(td, settings_.prior, log_w_, nullptr, &training_buffers_) <= fresh;
  }
  if (warm) start = log_w_;
  // With the barrier on, a data-driven start above it would fail at once: start just inside.
  if (settings_.prior.variance_barrier) start[0] = std::min(start[0], std::log(2.0) - 0.1);
  report.reinitialised = have_hyperparameters_ && !warm;
  // Whether a result within retrain_tolerance of the current hyperparameters keeps them; started
  // from them, SCG may then stop as soon as it knows that it will end there.
  const bool may_keep = have_hyperparameters_ && model_ready_ &&
                        settings_.retrain_tolerance > 0.0 &&
                        std::abs(std::log(sigma_c2_ / previous_c2)) < settings_.retrain_tolerance;
  const bool from_current = warm && start == log_w_;
  const SCGResult res = scaled_conjugate_gradient(
      f, start, settings_.scg, may_keep && from_current ? settings_.retrain_tolerance : 0.0);
  report.iterations = res.iterations;
  report.evaluations = res.evaluations;
  report.converged = res.converged;
  report.failed = res.failed;
  report.objective = res.value;
  if (!std::isfinite(res.value)) {
    ensure_hyperparameters();
    rebuild();
    return report;
  }
  const bool small_move =
      may_keep && (res.x - log_w_).cwiseAbs().maxCoeff() < settings_.retrain_tolerance;
  if (small_move) {
    sigma_c2_ = previous_c2;
    report.kept = true;
    return report;
  }
  log_w_ = res.x;
  have_hyperparameters_ = true;
  rebuild();
  return report;
}

void GaussianProcess::set_log_hyperparameters(const Eigen::VectorXd& log_w) {
  if (log_w.size() != 1 + geometry_.n_types())
    throw std::invalid_argument("expected " + std::to_string(1 + geometry_.n_types()) +
                                " log hyperparameters, got " + std::to_string(log_w.size()));
  if (!log_w.allFinite()) throw std::invalid_argument("log hyperparameters are not finite");
  log_w_ = log_w;
  have_hyperparameters_ = true;
  model_ready_ = false;
}

void GaussianProcess::set_sigma_c2(double value) {
  if (!(value > 0.0) || !std::isfinite(value))
    throw std::invalid_argument("sigma_c2 must be positive and finite");
  sigma_c2_ = value;
  model_ready_ = false;
}

void GaussianProcess::reset_hyperparameters() {
  have_hyperparameters_ = false;
  model_ready_ = false;
}

void GaussianProcess::rebuild() {
  ensure_hyperparameters();
  const Kernel kernel(geometry_, log_w_, sigma_c2_);
  std::vector<const Features*> obs;
  for (const auto& f : features_) obs.push_back(&f);
  factor_covariance(kernel, obs, settings_.prior.noise, factor_,
                    factor_capacity(n_observations() * (geometry_.dims() + 1)));
  if (!factor_.ok) {
    model_ready_ = false;
    throw std::runtime_error("covariance matrix is not positive definite even with jitter");
  }
  refresh_weights();
}

Eigen::Index GaussianProcess::factor_capacity(Eigen::Index rows) const {
  if (settings_.max_rows > 0) return std::max<Eigen::Index>(rows, settings_.max_rows);
  if (factor_.L.rows() >= rows) return rows;
  return rows + kReserveObservations * (geometry_.dims() + 1);
}

void GaussianProcess::refresh_weights() {
  const std::vector<int> all = all_observations();
  alpha_ = factor_.active().transpose().triangularView<Eigen::Upper>().solve(
      factor_.lower().solve(targets(all)));
  const int m = geometry_.dims() + 1;
  c_.resize(n_observations());
  for (int b = 0; b < n_observations(); ++b)
    c_[b] = geometry_.j_times(features_[b], alpha_.segment(b * m + 1, m - 1));
  model_ready_ = true;
}

double GaussianProcess::evaluate(const PositionsRef& positions, Eigen::VectorXd& gradient,
                                 double* variance) {
  if (!model_ready_) rebuild();
  const Kernel kernel(geometry_, log_w_, sigma_c2_);
  const Features star = geometry_.compute(positions);
  const int m = geometry_.dims() + 1;
  const int M = n_observations();
  const Eigen::VectorXd& theta2 = kernel.theta2_per_pair();
  Eigen::VectorXd gf = Eigen::VectorXd::Zero(geometry_.n_pairs());
  Eigen::VectorXd delta, u, kstar;
  if (variance) kstar.resize(m * M);
  double energy = 0.0;
  for (int b = 0; b < M; ++b) {
    const double k = kernel.squared_exponential(star, features_[b], delta, u);
    const double aE = alpha_[b * m];
    const double uc = u.dot(c_[b]);
    energy += (sigma_c2_ + k) * aE + 2.0 * k * uc;
    if (k != 0.0) gf += 2.0 * k * (theta2.cwiseProduct(c_[b]) - (aE + 2.0 * uc) * u);
    if (variance) {
      kstar[b * m] = sigma_c2_ + k;
      auto seg = kstar.segment(b * m + 1, m - 1);
      seg.setZero();
      geometry_.add_jt(features_[b], u, 2.0 * k, seg);
    }
  }
  gradient = Eigen::VectorXd::Zero(geometry_.dims());
  geometry_.add_jt(star, gf, 1.0, gradient);
  if (variance) {
    const Eigen::VectorXd v = factor_.lower().solve(kstar);
    *variance = std::max(0.0, sigma_c2_ + kernel.sigma_m2() - v.squaredNorm());
  }
  return energy + energies_.front();
}

}  // namespace gprdimer
