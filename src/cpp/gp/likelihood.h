#pragma once
// The MAP objective of docs/model.md: negative log marginal likelihood minus log prior.
#include <vector>

#include <Eigen/Dense>

#include "gp/covariance.h"
#include "gp/kernel.h"

namespace gprdimer {

struct PriorSettings {
  double noise = 1e-5;
  double prior_dof = 28.0;
  bool variance_barrier = false;
};

// Data-driven prior scales s_E^2 and s_x^2, floored at 1.
struct PriorScales {
  double s_E2 = 1.0;
  double s_x2 = 1.0;
};

struct TrainingData {
  const InverseDistances* geometry = nullptr;
  std::vector<const Features*> obs;
  Eigen::VectorXd y;  // point-major targets, energies referenced to the first observation
  double sigma_c2 = 1.0;
  PriorScales scales;
};

PriorScales prior_scales(const std::vector<const Features*>& obs, const Eigen::VectorXd& energies);

// GPstuff 0.75-quantile start on the floored scales.
Eigen::VectorXd initial_log_hyperparameters(const PriorScales& scales, int n_types);

// The n x n matrices of one evaluation, kept between evaluations on data of one size (a
// training calls the objective a dozen times or more). The factor stays valid for the
// hyperparameters in factored_at until forget(): a training evaluates its warm start without
// the gradient, then with it as the optimiser's first step, and the second reuses the factor.
// Whoever changes the data between evaluations calls forget().
struct ObjectiveWorkspace {
  Eigen::MatrixXd Linv, W;
  Factor factor;
  Eigen::VectorXd factored_at;  // empty: the factor holds no evaluation
  void forget() { factored_at.resize(0); }
};

// Returns L(w); fills grad when given. +infinity (and zero gradient) when K cannot be factorised
// or w sits outside the variance barrier, so that the optimiser backs off. work, when given,
// supplies the buffers.
double map_objective(const TrainingData& data, const PriorSettings& settings,
                     const Eigen::VectorXd& log_w, Eigen::VectorXd* grad,
                     ObjectiveWorkspace* work = nullptr);

}  // namespace gprdimer
