#pragma once
// Moller's scaled conjugate gradient: no line search, two objective evaluations per iteration,
// which is why the GPR-dimer trains its hyperparameters with it.
#include <functional>

#include <Eigen/Dense>

namespace gprdimer {

struct SCGSettings {
  int max_iterations = 400;
  double tol_sol = 0.01;   // stop when max |step| falls below this
  double tol_func = 1e-4;  // ... or when the objective changes by less than this
  double lambda_init = 100.0;
  double lambda_limit = 1e16;
  double sigma0 = 1e-4;
};

struct SCGResult {
  Eigen::VectorXd x;
  double value = 0.0;
  int iterations = 0;
  int evaluations = 0;
  bool converged = false;
  bool failed = false;  // lambda ran past its limit or the start was not finite
};

// f(x, grad) returns the objective and writes its gradient.
using Objective = std::function<double(const Eigen::VectorXd&, Eigen::VectorXd&)>;

SCGResult scaled_conjugate_gradient(const Objective& f, Eigen::VectorXd x, const SCGSettings& s);

}  // namespace gprdimer
