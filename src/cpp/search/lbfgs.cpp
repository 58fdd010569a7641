#include "search/lbfgs.h"

#include <vector>

namespace gprdimer {

void LBFGS::update(const Eigen::VectorXd& s, const Eigen::VectorXd& y) {
  if (memory_ <= 0 || !(s.dot(y) > 1e-12 * s.norm() * y.norm())) return;
  s_.push_back(s);
  y_.push_back(y);
  if (static_cast<int>(s_.size()) > memory_) {
    s_.pop_front();
    y_.pop_front();
  }
}

Eigen::VectorXd LBFGS::step(const Eigen::VectorXd& g) const {
  const int k = size();
  Eigen::VectorXd q = g;
  std::vector<double> a(k), rho(k);
  for (int i = k - 1; i >= 0; --i) {
    rho[i] = 1.0 / y_[i].dot(s_[i]);
    a[i] = rho[i] * s_[i].dot(q);
    q -= a[i] * y_[i];
  }
  // Scale the initial Hessian by the latest curvature pair, as usual for L-BFGS.
  const double gamma = k > 0 ? s_.back().dot(y_.back()) / y_.back().squaredNorm() : h0_;
  Eigen::VectorXd r = gamma * q;
  for (int i = 0; i < k; ++i) {
    const double b = rho[i] * y_[i].dot(r);
    r += (a[i] - b) * s_[i];
  }
  return -r;
}

}  // namespace gprdimer
