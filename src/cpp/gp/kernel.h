#pragma once
// Squared-exponential kernel on inverse distances with energy and gradient blocks
// (docs/model.md), and its derivatives with respect to the log hyperparameters.
#include <Eigen/Dense>

#include "geometry/inverse_distances.h"

namespace gprdimer {

class Kernel {
 public:
  // log_w = (log sigma_m^2, log l_1, ..., log l_T).
  Kernel(const InverseDistances& geometry, const Eigen::VectorXd& log_w, double sigma_c2);

  int block_size() const { return geometry_.dims() + 1; }
  double sigma_m2() const { return sigma_m2_; }
  double sigma_c2() const { return sigma_c2_; }
  const Eigen::VectorXd& theta2_per_pair() const { return theta2_; }

  // The (D+1)x(D+1) covariance of [E_a, g_a] with [E_b, g_b] (constant kernel included).
  void block(const Features& a, const Features& b, Eigen::Ref<Eigen::MatrixXd> out) const;

  // Adds <W_ab, dK_ab/dw_i> for every log hyperparameter w_i into grad (size 1+T);
  // the constant kernel and the noise do not depend on w.
  void contract_derivatives(const Features& a, const Features& b,
                            const Eigen::Ref<const Eigen::MatrixXd>& W, double weight,
                            Eigen::Ref<Eigen::VectorXd> grad) const;

  // k_SE and u = Theta (f_a - f_b); delta receives f_a - f_b.
  double squared_exponential(const Features& a, const Features& b, Eigen::VectorXd& delta,
                             Eigen::VectorXd& u) const;

 private:
  // G += scale * J_a^T diag(w) J_b, using the sparse pair structure of the Jacobians.
  void add_jt_w_j(const Features& a, const Features& b, const Eigen::VectorXd& w, double scale,
                  Eigen::Ref<Eigen::MatrixXd> G) const;

  const InverseDistances& geometry_;
  double sigma_m2_;
  double sigma_c2_;
  Eigen::VectorXd theta2_;  // theta_t(p)^2 for every pair p
};

}  // namespace gprdimer
