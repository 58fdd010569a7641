#pragma once
// The inner loop of the GPR-dimer: rotate and translate the dimer on the surrogate surface until the
// predicted force is small, the search leaves the region the data describe, or steps run out.
#include <string>

#include <Eigen/Dense>

#include "search/dimer.h"
#include "search/surrogate.h"
#include "search/trust.h"

namespace gprdimer {

enum class InnerStop { Converged, MaxIterations, LeftTrustRegion };
std::string to_string(InnerStop stop);

struct InnerSettings {
  InnerSettings() { rotation.exact_image = true; }
  int max_iterations = 200;
  double force_tolerance = 0.001;  // on the largest per-atom GP force
  RotationSettings rotation;
  TranslationSettings translation;
  TrustSettings trust;
  // P-RFO steps on the GP Hessian (search/prfo.h) instead of dimer rotations and translations;
  // the uphill part (along the mode) and the downhill part are each capped at
  // translation.max_step.
  bool second_order = false;
  double hessian_step = 1e-3;   // A, central differences of the GP gradient
};

struct InnerResult {
  Positions positions;
  Eigen::VectorXd tau;
  Eigen::VectorXd gradient;  // GP gradient at the final midpoint (moving coordinates)
  double energy = 0.0;
  double curvature = 0.0;
  int iterations = 0;
  int rotations = 0;
  InnerStop stop = InnerStop::MaxIterations;
};

// Rotations alone at fixed midpoint on the GP surface (the initial-rotation phase).
RotationResult rotate_on_surrogate(const SurrogateModel& model, const PositionsRef& midpoint,
                                   const Eigen::VectorXd& tau, const RotationSettings& settings);

InnerResult relax_on_surrogate(const SurrogateModel& model, const PositionsRef& start,
                               const Eigen::VectorXd& tau, const InnerSettings& settings);

}  // namespace gprdimer
