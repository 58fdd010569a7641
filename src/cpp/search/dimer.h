#pragma once
// Dimer minimum-mode following: rotations that find the lowest-curvature direction tau at a
// midpoint, and translations on the modified force F - 2(F.tau)tau. The same code runs on the
// GP surface (inner loop) and, through a callback, on the true surface (the plain dimer).
#include <functional>

#include <Eigen/Dense>

#include "geometry/inverse_distances.h"
#include "search/lbfgs.h"

namespace gprdimer {

// Energy at moving coordinates x; writes the gradient.
using Surface = std::function<double(const Eigen::VectorXd& x, Eigen::VectorXd& gradient)>;

enum class RotationMethod { ConjugateGradient, LBFGS };

struct RotationSettings {
  int max_rotations = 10;
  double converged_angle = 0.01;  // rad: stop when the optimal rotation is smaller
  double separation = 0.01;       // A, midpoint to image 1
  double trial_angle = 0.05;      // rad, finite rotation used to fit the curvature
  RotationMethod method = RotationMethod::LBFGS;
  // Evaluate image 1 afresh after each rotation instead of interpolating it. Interpolation saves
  // a true call per rotation, but its error, amplified by 1/sin(trial_angle), compounds over
  // many rotations on a surface that is not quadratic: on the GP, where calls are cheap, the
  // rotations then diverge.
  bool exact_image = false;
};

struct RotationResult {
  Eigen::VectorXd tau;
  Eigen::VectorXd g1;  // gradient at image 1 of the final tau (interpolated after a rotation)
  double curvature = 0.0;
  double last_angle = 0.0;
  int rotations = 0;
  int evaluations = 0;
  bool converged = false;
};

// Curvature along tau from the midpoint and image-1 gradients.
double dimer_curvature(const Eigen::VectorXd& g0, const Eigen::VectorXd& g1,
                       const Eigen::VectorXd& tau, double separation);

// Estimated optimal rotation angle from the true or predicted gradients at both images.
double estimated_rotation_angle(const Eigen::VectorXd& g0, const Eigen::VectorXd& g1,
                                const Eigen::VectorXd& tau, double separation);

// Rotates tau at midpoint x0. g1 may be null (image 1 is then evaluated).
RotationResult rotate_dimer(const Surface& surface, const Eigen::VectorXd& x0,
                            const Eigen::VectorXd& g0, Eigen::VectorXd tau,
                            const Eigen::VectorXd* g1, const RotationSettings& settings);

struct TranslationSettings {
  double max_step = 0.05;         // A, cap on the norm of an L-BFGS step
  double convex_step = 0.1;       // A, uphill step along tau at positive curvature
  // At positive curvature, step on the modified force as at negative curvature instead of the
  // fixed uphill step: the forces across the mode relax as well. Along a soft mode (a torsion,
  // curvature near zero) the fixed step only climbs, and the other forces never shrink.
  bool convex_relax = false;
  int memory = 0;                 // L-BFGS memory; 0 means the number of coordinates
  double initial_inverse_curvature = 0.01;
};

class Translator {
 public:
  Translator(int dims, const TranslationSettings& settings);
  // Step from x given the midpoint gradient, the mode and the curvature along it.
  Eigen::VectorXd step(const Eigen::VectorXd& x, const Eigen::VectorXd& g0,
                       const Eigen::VectorXd& tau, double curvature);
  void reset();

 private:
  TranslationSettings settings_;
  LBFGS lbfgs_;
  Eigen::VectorXd x_prev_, gmod_prev_;
  bool have_prev_ = false;
};

// Largest per-atom force norm of a gradient over moving coordinates.
double max_atom_norm(const Eigen::VectorXd& g);

}  // namespace gprdimer
