#pragma once
// Partitioned rational-function optimisation (P-RFO, Baker 1986): the second-order saddle step
// that Sella takes on the true surface, uphill along the lowest Hessian mode and downhill along
// all others. On the GP a Hessian costs 2D cheap gradient evaluations (central differences), so
// the inner loop can take it where the dimer, which knows one mode, slides into a minimum.
#include <Eigen/Dense>

#include "geometry/inverse_distances.h"
#include "search/dimer.h"

namespace gprdimer {

// Hessian of `surface` at x by central differences of its gradient, step h, symmetrised.
Eigen::MatrixXd finite_difference_hessian(const Surface& surface, const Eigen::VectorXd& x,
                                          double h);

// Orthonormal columns spanning the rigid motions that leave an inverse-distance surface
// unchanged: none with fixed atoms, translations with a periodic cell, else translations and
// rotations about the centroid (fewer for a linear molecule).
Eigen::MatrixXd rigid_motions(const InverseDistances& geometry, const PositionsRef& positions);

struct PrfoStep {
  Eigen::VectorXd step;
  Eigen::VectorXd mode;    // lowest internal eigenvector, sign as `previous_mode`
  double curvature = 0.0;  // its eigenvalue
};

// The P-RFO step from gradient g and Hessian H, with the rigid motions (columns of `rigid`)
// projected out of both.
PrfoStep prfo_step(const Eigen::MatrixXd& hessian, const Eigen::VectorXd& gradient,
                   const Eigen::MatrixXd& rigid, const Eigen::VectorXd& previous_mode);

}  // namespace gprdimer
