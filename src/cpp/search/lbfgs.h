#pragma once
// Limited-memory BFGS inverse-Hessian estimate, shared by dimer rotations and translations.
#include <deque>

#include <Eigen/Dense>

namespace gprdimer {

class LBFGS {
 public:
  LBFGS(int memory, double initial_inverse_curvature)
      : memory_(memory), h0_(initial_inverse_curvature) {}

  void reset() {
    s_.clear();
    y_.clear();
  }
  // Skips pairs with non-positive curvature s.y, which would break positive definiteness.
  void update(const Eigen::VectorXd& s, const Eigen::VectorXd& y);
  // -H g: the quasi-Newton step for gradient g.
  Eigen::VectorXd step(const Eigen::VectorXd& g) const;
  int size() const { return static_cast<int>(s_.size()); }

 private:
  int memory_;
  double h0_;
  std::deque<Eigen::VectorXd> s_, y_;
};

}  // namespace gprdimer
