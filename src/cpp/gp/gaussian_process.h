#pragma once
// A GP over configurations of one molecule, observed through energies and forces.
#include <vector>

#include <Eigen/Dense>

#include "geometry/inverse_distances.h"
#include "gp/covariance.h"
#include "gp/likelihood.h"
#include "gp/scg.h"

namespace gprdimer {

struct GPSettings {
  PriorSettings prior;
  SCGSettings scg;
  int training_subset = 0;  // 0: train on all observations
  int latest = 2;           // most recent observations always in the subset
  // Keep the previous hyperparameters (and the factor, extended observation by observation)
  // when a training moves no log hyperparameter by more than this: a refactorisation on all
  // data is the largest cost of an outer iteration once M grows. 0 always adopts the new values.
  double retrain_tolerance = 0.0;
  // Rows of the covariance (observations x (dims + 1)) the model may hold; 0: no bound. Past it
  // the oldest observations go, down to three quarters of the bound. The factor's storage is
  // reserved at the bound's size once, so the model's memory never exceeds it (plus the
  // training subset's matrices and vectors of one row).
  int max_rows = 0;
};

struct TrainingReport {
  int iterations = 0;
  int evaluations = 0;
  bool converged = false;
  bool failed = false;
  bool reinitialised = false;  // the data-driven start scored better than the warm start and was taken
  bool kept = false;           // within retrain_tolerance: previous hyperparameters kept
  double objective = 0.0;
  std::vector<int> subset;
};

class GaussianProcess {
 public:
  GaussianProcess(InverseDistances geometry, GPSettings settings);

  // energy in eV, forces (N x 3) in eV/A; the forces on fixed atoms are ignored.
  void add(const PositionsRef& positions, double energy, const PositionsRef& forces);
  TrainingReport train();

  // Energy (absolute, eV), gradient over the moving coordinates, and optionally the latent
  // variance of the energy. Builds the model first if hyperparameters or data changed.
  double evaluate(const PositionsRef& positions, Eigen::VectorXd& gradient, double* variance);

  // MAP objective on all observations at w, with sigma_c2 and the prior scales of the data.
  double objective(const Eigen::VectorXd& log_w, Eigen::VectorXd* grad) const;

  const Eigen::VectorXd& log_hyperparameters() const { return log_w_; }
  void set_log_hyperparameters(const Eigen::VectorXd& log_w);
  double sigma_c2() const { return sigma_c2_; }
  void set_sigma_c2(double value);
  // Forget the fitted hyperparameters: the next train() starts from the data-driven values.
  void reset_hyperparameters();
  double jitter() const { return factor_.jitter; }

  int n_observations() const { return static_cast<int>(features_.size()); }
  const InverseDistances& geometry() const { return geometry_; }
  const std::vector<Positions>& configurations() const { return configs_; }
  const std::vector<Features>& features() const { return features_; }
  const GPSettings& settings() const { return settings_; }

 private:
  std::vector<int> all_observations() const;
  TrainingData training_data(const std::vector<int>& subset) const;
  Eigen::VectorXd targets(const std::vector<int>& subset) const;
  void ensure_hyperparameters();
  void forget_oldest();
  void rebuild();
  void refresh_weights();
  // Rows the factor's storage should have for a factor of `rows` rows.
  Eigen::Index factor_capacity(Eigen::Index rows) const;

  InverseDistances geometry_;
  GPSettings settings_;
  std::vector<Positions> configs_;
  std::vector<Features> features_;
  std::vector<double> energies_;
  std::vector<Eigen::VectorXd> gradients_;

  Eigen::VectorXd log_w_;
  bool have_hyperparameters_ = false;
  double sigma_c2_ = 1.0;

  Factor factor_;
  bool model_ready_ = false;
  ObjectiveWorkspace training_buffers_;  // the subset keeps its size from one training to the next
  Eigen::VectorXd alpha_;
  std::vector<Eigen::VectorXd> c_;  // J_b alpha_G,b in feature space, per observation
};

}  // namespace gprdimer
