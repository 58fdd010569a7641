#include "search/surrogate_relax.h"

#include <cmath>
#include <limits>

#include "gp/subset.h"
#include "search/prfo.h"

namespace gprdimer {

std::string to_string(InnerStop stop) {
  switch (stop) {
    case InnerStop::Converged: return "converged";
    case InnerStop::MaxIterations: return "max inner iterations";
    case InnerStop::LeftTrustRegion: return "left trust region";
  }
  return "unknown";
}

namespace {

// The surrogate as a Surface over moving coordinates; fixed atoms stay where `reference` has them.
struct SurrogateSurface {
  const SurrogateModel& model;
  Positions reference;

  Positions positions(const Eigen::VectorXd& v) const {
    Positions p = reference;
    const auto& moving = model.geometry.moving_atoms();
    for (size_t m = 0; m < moving.size(); ++m) p.row(moving[m]) = v.segment<3>(3 * m).transpose();
    return p;
  }
  Surface surface() {
    return [this](const Eigen::VectorXd& v, Eigen::VectorXd& g) {
      return model.evaluate(positions(v), g, nullptr);
    };
  }
};

}  // namespace

RotationResult rotate_on_surrogate(const SurrogateModel& model, const PositionsRef& midpoint,
                                   const Eigen::VectorXd& tau, const RotationSettings& settings) {
  SurrogateSurface ss{model, midpoint};
  const Surface surface = ss.surface();
  const Eigen::VectorXd x = model.geometry.moving_coordinates(midpoint);
  Eigen::VectorXd g0;
  surface(x, g0);
  return rotate_dimer(surface, x, g0, tau, nullptr, settings);
}

InnerResult relax_on_surrogate(const SurrogateModel& model, const PositionsRef& start,
                               const Eigen::VectorXd& tau0, const InnerSettings& s) {
  const InverseDistances& geom = model.geometry;
  SurrogateSurface ss{model, start};
  const Surface surface = ss.surface();
  Positions positions = start;
  Eigen::VectorXd x = geom.moving_coordinates(positions);
  auto to_positions = [&ss](const Eigen::VectorXd& v) { return ss.positions(v); };

  InnerResult res;
  res.tau = tau0.normalized();
  Translator translator(geom.dims(), s.translation);
  Eigen::VectorXd g0;
  double e0 = surface(x, g0);
  for (int it = 0; it < s.max_iterations; ++it) {
    res.iterations = it;
    if (max_atom_norm(g0) < s.force_tolerance) {
      res.stop = InnerStop::Converged;
      break;
    }
    Eigen::VectorXd dx;
    if (s.second_order) {
      const PrfoStep p = prfo_step(finite_difference_hessian(surface, x, s.hessian_step), g0,
                                   rigid_motions(geom, positions), res.tau);
      res.tau = p.mode;
      res.curvature = p.curvature;
      // Capped apart: at positive curvature the uphill part grows as 1/|gradient along the
      // mode| and, capped together, it would leave nothing of the downhill part.
      Eigen::VectorXd up = p.step.dot(p.mode) * p.mode;
      Eigen::VectorXd down = p.step - up;
      if (up.norm() > s.translation.max_step) up *= s.translation.max_step / up.norm();
      if (down.norm() > s.translation.max_step) down *= s.translation.max_step / down.norm();
      dx = up + down;
    } else {
      const RotationResult rot = rotate_dimer(surface, x, g0, res.tau, nullptr, s.rotation);
      res.tau = rot.tau;
      res.curvature = rot.curvature;
      res.rotations += rot.rotations;
      dx = translator.step(x, g0, res.tau, rot.curvature);
    }
    const double factor = step_limit_factor(geom, positions, dx, s.trust.ratio_at_limit);
    if (factor < 1.0) {
      dx *= factor;
      translator.reset();
    }
    const Eigen::VectorXd x_trial = x + dx;
    const Positions p_trial = to_positions(x_trial);
    if (it > 0 && outside_trust_region(model, p_trial, s.trust)) {
      res.stop = InnerStop::LeftTrustRegion;
      break;
    }
    x = x_trial;
    positions = p_trial;
    e0 = surface(x, g0);
    res.iterations = it + 1;
    res.stop = InnerStop::MaxIterations;
  }
  if (res.stop == InnerStop::MaxIterations && max_atom_norm(g0) < s.force_tolerance)
    res.stop = InnerStop::Converged;
  // Curvature at the final midpoint along the final mode, for the caller's bookkeeping.
  Eigen::VectorXd g1;
  surface(x + s.rotation.separation * res.tau, g1);
  res.curvature = dimer_curvature(g0, g1, res.tau, s.rotation.separation);
  res.positions = positions;
  res.gradient = g0;
  res.energy = e0;
  return res;
}

}  // namespace gprdimer
