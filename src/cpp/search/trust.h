#pragma once
// Where a surrogate is trusted: the inner loop stays where the observations describe the surface,
// and no GP step moves an atom far against its nearest neighbour.
#include <Eigen/Dense>

#include "geometry/inverse_distances.h"
#include "search/surrogate.h"

namespace gprdimer {

struct TrustSettings {
  // Every inter-atomic distance within [ratio, 1/ratio] of its value in one observation.
  bool ratio_window = true;
  double ratio_at_limit = 0.8;  // that ratio, and the per-atom step limiter's (paper: 2/3)
  double radius = 0.0;          // > 0: transport distance to the nearest observation below this
  double max_variance = 0.0;    // > 0: GP energy variance below this (eV^2)
};

bool outside_ratio_window(const SurrogateModel& model, const Features& trial, double ratio);
// Whether some observation lies within `radius` (transport distance) of the trial.
bool within_transport_radius(const SurrogateModel& model, const PositionsRef& trial,
                             double radius);
// Whether the trial positions leave the region these settings trust.
bool outside_trust_region(const SurrogateModel& model, const PositionsRef& trial,
                          const TrustSettings& settings);

// Largest per-atom displacement allowed: 0.99 * (1 - ratio)/2 * nearest-neighbour distance.
// Returns the factor (<= 1) by which step must be scaled.
double step_limit_factor(const InverseDistances& geometry, const PositionsRef& positions,
                         const Eigen::VectorXd& step, double ratio_at_limit);

// The OT-GP transport radius: grows with the data, capped by a size-dependent ceiling (A).
double adaptive_trust_radius(int n_observations, int n_atoms);

}  // namespace gprdimer
