#include "gp/scg.h"

#include <algorithm>
#include <cmath>

namespace gprdimer {

SCGResult scaled_conjugate_gradient(const Objective& f, Eigen::VectorXd x, const SCGSettings& s,
                                    double settle) {
  settle = std::min(settle, s.tol_sol);
  SCGResult res;
  const Eigen::Index n = x.size();
  Eigen::VectorXd grad_new(n), grad_old(n), grad_plus(n), grad_trial(n);
  double f_old = f(x, grad_new);
  res.evaluations = 1;
  if (!std::isfinite(f_old)) {
    res.x = x;
    res.value = f_old;
    res.failed = true;
    return res;
  }
  grad_old = grad_new;
  Eigen::VectorXd d = -grad_new;
  bool success = true;
  int n_success = 0;
  double lambda = s.lambda_init;
  const double lambda_min = 1e-15;
  double mu = 0.0, kappa = 0.0, theta = 0.0;

  for (int j = 1; j <= s.max_iterations; ++j) {
    res.iterations = j;
    if (success) {
      mu = d.dot(grad_new);
      if (mu >= 0.0) {
        d = -grad_new;
        mu = d.dot(grad_new);
      }
      kappa = d.squaredNorm();
      if (kappa < 1e-300) {
        res.converged = true;
        break;
      }
      const double sigma = s.sigma0 / std::sqrt(kappa);
      const double f_plus = f(x + sigma * d, grad_plus);
      ++res.evaluations;
      theta = std::isfinite(f_plus) ? d.dot(grad_plus - grad_new) / sigma : 0.0;
      if (!std::isfinite(f_plus)) lambda = std::min(4.0 * lambda, s.lambda_limit);
    }
    double delta = theta + lambda * kappa;
    if (delta <= 0.0) {
      delta = lambda * kappa;
      lambda -= theta / kappa;
    }
    const double alpha = -mu / delta;
    if (j == 1 && settle > 0.0 && (alpha * d).cwiseAbs().maxCoeff() < settle) {
      res.converged = true;
      break;
    }
    const Eigen::VectorXd x_trial = x + alpha * d;
    const double f_trial = f(x_trial, grad_trial);
    ++res.evaluations;
    const double Delta = std::isfinite(f_trial) ? 2.0 * (f_trial - f_old) / (alpha * mu) : -1.0;
    if (Delta >= 0.0) {
      success = true;
      ++n_success;
      x = x_trial;
    } else {
      success = false;
    }
    if (success) {
      const double step = (alpha * d).cwiseAbs().maxCoeff();
      const double change = std::abs(f_trial - f_old);
      f_old = f_trial;
      grad_old = grad_new;
      grad_new = grad_trial;
      if (step < s.tol_sol || change < s.tol_func || grad_new.squaredNorm() == 0.0) {
        res.converged = true;
        break;
      }
    }
    if (Delta < 0.25) lambda = std::min(4.0 * lambda, s.lambda_limit);
    if (Delta > 0.75) lambda = std::max(0.5 * lambda, lambda_min);
    if (lambda >= s.lambda_limit) {
      res.failed = true;
      break;
    }
    if (n_success == n) {
      d = -grad_new;
      n_success = 0;
    } else if (success) {
      const double gamma = (grad_old - grad_new).dot(grad_new) / mu;
      d = gamma * d - grad_new;
    }
  }
  res.x = x;
  res.value = f_old;
  return res;
}

}  // namespace gprdimer
