#include "search/dimer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace gprdimer {

double dimer_curvature(const Eigen::VectorXd& g0, const Eigen::VectorXd& g1,
                       const Eigen::VectorXd& tau, double separation) {
  return (g1 - g0).dot(tau) / separation;
}

double estimated_rotation_angle(const Eigen::VectorXd& g0, const Eigen::VectorXd& g1,
                                const Eigen::VectorXd& tau, double separation) {
  const Eigen::VectorXd hv = (g1 - g0) / separation;  // H tau
  const double c = hv.dot(tau);
  const double perp = (hv - c * tau).norm();
  return 0.5 * std::atan2(perp, std::abs(c));
}

double max_atom_norm(const Eigen::VectorXd& g) {
  double worst = 0.0;
  for (Eigen::Index a = 0; a + 2 < g.size(); a += 3) worst = std::max(worst, g.segment<3>(a).norm());
  return worst;
}

RotationResult rotate_dimer(const Surface& surface, const Eigen::VectorXd& x0,
                            const Eigen::VectorXd& g0, Eigen::VectorXd tau,
                            const Eigen::VectorXd* g1_in, const RotationSettings& s) {
  RotationResult res;
  const double dR = s.separation;
  tau.normalize();
  Eigen::VectorXd g1;
  if (g1_in) {
    g1 = *g1_in;
  } else {
    surface(x0 + dR * tau, g1);
    ++res.evaluations;
  }
  LBFGS memory(static_cast<int>(x0.size()), 1.0);
  Eigen::VectorXd force_prev, dir_prev, tau_prev;
  for (int it = 0; it < s.max_rotations; ++it) {
    const Eigen::VectorXd hv = (g1 - g0) / dR;
    const double c0 = hv.dot(tau);
    // Rotational force: minus the gradient of the curvature on the unit sphere (up to 2).
    const Eigen::VectorXd force = -(hv - c0 * tau);
    // Skip the trial rotation (one more evaluation) when the estimated angle is already small.
    if (force.norm() < 1e-12 || 0.5 * std::atan2(force.norm(), std::abs(c0)) < s.converged_angle) {
      res.converged = true;
      break;
    }
    Eigen::VectorXd dir;
    if (s.method == RotationMethod::ConjugateGradient && it > 0) {
      const double gamma = std::max(0.0, (force - force_prev).dot(force) / force_prev.squaredNorm());
      dir = force + gamma * dir_prev;
    } else if (s.method == RotationMethod::LBFGS && it > 0) {
      memory.update(tau - tau_prev, -(force - force_prev));
      dir = memory.step(-force);
    } else {
      dir = force;
    }
    dir -= dir.dot(tau) * tau;
    if (dir.dot(force) <= 0.0) dir = force;  // keep a descent direction for the curvature
    const double dn = dir.norm();
    if (dn < 1e-14) {
      res.converged = true;
      break;
    }
    const Eigen::VectorXd theta = dir / dn;

    // Curvature at a trial rotation, then the optimal angle of C(phi) = A + a cos 2phi + b sin 2phi.
    const double phi1 = s.trial_angle;
    const Eigen::VectorXd tau1 = std::cos(phi1) * tau + std::sin(phi1) * theta;
    Eigen::VectorXd g1_trial;
    surface(x0 + dR * tau1, g1_trial);
    ++res.evaluations;
    const double c1 = (g1_trial - g0).dot(tau1) / dR;
    const double b = hv.dot(theta);  // (dC/dphi)/2 at phi = 0
    const double a = (c0 - c1 + b * std::sin(2 * phi1)) / (1.0 - std::cos(2 * phi1));
    // a cos 2phi + b sin 2phi is largest at atan2(b, a)/2 and smallest a quarter turn later.
    double phi = 0.5 * std::atan2(b, a) + 0.5 * M_PI;
    while (phi > 0.5 * M_PI) phi -= M_PI;
    while (phi <= -0.5 * M_PI) phi += M_PI;

    tau_prev = tau;
    force_prev = force;
    dir_prev = dir;
    const Eigen::VectorXd tau_new = (std::cos(phi) * tau + std::sin(phi) * theta).normalized();
    if (s.exact_image) {
      surface(x0 + dR * tau_new, g1);
      ++res.evaluations;
    } else {
      // Image-1 gradient at the new angle, interpolated from the two evaluated images (no call).
      const double sp1 = std::sin(phi1);
      g1 = (std::sin(phi1 - phi) / sp1) * g1 + (std::sin(phi) / sp1) * g1_trial +
           (1.0 - std::cos(phi) - std::sin(phi) * std::tan(0.5 * phi1)) * g0;
    }
    tau = tau_new;
    res.rotations = it + 1;
    res.last_angle = std::abs(phi);
    if (std::abs(phi) < s.converged_angle) {
      res.converged = true;
      break;
    }
  }
  res.tau = tau;
  res.g1 = g1;
  res.curvature = dimer_curvature(g0, g1, tau, dR);
  return res;
}

Translator::Translator(int dims, const TranslationSettings& settings)
    : settings_(settings),
      lbfgs_(settings.memory > 0 ? settings.memory : dims, settings.initial_inverse_curvature) {}

void Translator::reset() {
  lbfgs_.reset();
  have_prev_ = false;
}

Eigen::VectorXd Translator::step(const Eigen::VectorXd& x, const Eigen::VectorXd& g0,
                                 const Eigen::VectorXd& tau, double curvature) {
  if (curvature >= 0.0 && !settings_.convex_relax) {
    // Convex region: go uphill along the mode only, by a fixed amount.
    reset();
    const double along = -g0.dot(tau);  // force component along tau
    return -(along >= 0.0 ? 1.0 : -1.0) * settings_.convex_step * tau;
  }
  // Gradient of the surface on which the saddle is a minimum: g - 2(g.tau)tau.
  const Eigen::VectorXd gmod = g0 - 2.0 * g0.dot(tau) * tau;
  if (have_prev_) lbfgs_.update(x - x_prev_, gmod - gmod_prev_);
  x_prev_ = x;
  gmod_prev_ = gmod;
  have_prev_ = true;
  Eigen::VectorXd dx = lbfgs_.step(gmod);
  if (dx.dot(gmod) >= 0.0) {  // not a descent direction: start the memory again
    lbfgs_.reset();
    dx = lbfgs_.step(gmod);
  }
  const double n = dx.norm();
  if (n > settings_.max_step) {
    dx *= settings_.max_step / n;
    lbfgs_.reset();
  }
  return dx;
}

}  // namespace gprdimer
