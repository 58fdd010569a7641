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

// settle > 0: where the first step moves no coordinate by min(settle, tol_sol) or more, returns
// the start, converged, without evaluating that step. The run would have ended within that
// distance of the start: a failed trial only shortens the next step (it raises lambda and keeps
// the direction and its curvature), and the first successful one, shorter than tol_sol, ends
// it. A caller that only asks whether training moves away from its warm start saves the last
// of its three evaluations.
SCGResult scaled_conjugate_gradient(const Objective& f, Eigen::VectorXd x, const SCGSettings& s,
                                    double settle = 0.0);

}  // namespace gprdimer
