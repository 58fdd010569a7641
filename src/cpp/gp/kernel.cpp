#include "gp/kernel.h"

#include <cmath>
#include <stdexcept>

namespace gprdimer {

Kernel::Kernel(const InverseDistances& geometry, const Eigen::VectorXd& log_w, double sigma_c2)
    : geometry_(geometry), sigma_c2_(sigma_c2) {
  if (log_w.size() != 1 + geometry.n_types())
    throw std::invalid_argument("expected " + std::to_string(1 + geometry.n_types()) +
                                " log hyperparameters, got " + std::to_string(log_w.size()));
  sigma_m2_ = std::exp(log_w[0]);
  theta2_.resize(geometry.n_pairs());
  for (int p = 0; p < geometry.n_pairs(); ++p)
    theta2_[p] = std::exp(-2.0 * log_w[1 + geometry.pairs()[p].type]);
}

double Kernel::squared_exponential(const Features& a, const Features& b, Eigen::VectorXd& delta,
                                   Eigen::VectorXd& u) const {
  delta = a.f - b.f;
  u = theta2_.cwiseProduct(delta);
  const double k = sigma_m2_ * std::exp(-delta.dot(u));
  // GPstuff truncates negligible covariances; keeps far-apart points exactly uncorrelated.
  return k > 1e-300 ? k : 0.0;
}

void Kernel::add_jt_w_j(const Features& a, const Features& b, const Eigen::VectorXd& w,
                        double scale, Eigen::Ref<Eigen::MatrixXd> G) const {
  const auto& pairs = geometry_.pairs();
  for (int p = 0; p < static_cast<int>(pairs.size()); ++p) {
    const double s = scale * w[p];
    if (s == 0.0) continue;
    const Eigen::Matrix3d outer = s * a.q.row(p).transpose() * b.q.row(p);
    const int ends[2] = {pairs[p].mi, pairs[p].mj};
    const double sign[2] = {-1.0, 1.0};
    for (int e1 = 0; e1 < 2; ++e1) {
      if (ends[e1] < 0) continue;
      for (int e2 = 0; e2 < 2; ++e2) {
        if (ends[e2] < 0) continue;
        G.block<3, 3>(3 * ends[e1], 3 * ends[e2]) += (sign[e1] * sign[e2]) * outer;
      }
    }
  }
}

void Kernel::block(const Features& a, const Features& b, Eigen::Ref<Eigen::MatrixXd> out) const {
  const int D = geometry_.dims();
  Eigen::VectorXd delta, u;
  const double k = squared_exponential(a, b, delta, u);
  out.setZero();
  out(0, 0) = sigma_c2_ + k;
  if (k == 0.0) return;
  Eigen::VectorXd ja_u = Eigen::VectorXd::Zero(D), jb_u = Eigen::VectorXd::Zero(D);
  geometry_.add_jt(a, u, 1.0, ja_u);
  geometry_.add_jt(b, u, 1.0, jb_u);
  out.block(0, 1, 1, D) = 2.0 * k * jb_u.transpose();
  out.block(1, 0, D, 1) = -2.0 * k * ja_u;
  auto gg = out.block(1, 1, D, D);
  add_jt_w_j(a, b, theta2_, 2.0 * k, gg);
  gg.noalias() -= (4.0 * k) * ja_u * jb_u.transpose();
}

void Kernel::contract_derivatives(const Features& a, const Features& b,
                                  const Eigen::Ref<const Eigen::MatrixXd>& W, double weight,
                                  Eigen::Ref<Eigen::VectorXd> grad) const {
  const int D = geometry_.dims();
  const int T = geometry_.n_types();
  const auto& pairs = geometry_.pairs();
  Eigen::VectorXd delta, u;
  const double k = squared_exponential(a, b, delta, u);
  if (k == 0.0) return;

  const double wEE = W(0, 0);
  const Eigen::VectorXd wEG = W.block(0, 1, 1, D).transpose();
  const Eigen::VectorXd wGE = W.block(1, 0, D, 1);
  const auto WGG = W.block(1, 1, D, D);

  Eigen::VectorXd ja_u = Eigen::VectorXd::Zero(D), jb_u = Eigen::VectorXd::Zero(D);
  geometry_.add_jt(a, u, 1.0, ja_u);
  geometry_.add_jt(b, u, 1.0, jb_u);
  const Eigen::VectorXd y1 = WGG * jb_u;                // W_GG J_b^T u
  const Eigen::VectorXd y2 = WGG.transpose() * ja_u;    // W_GG^T J_a^T u
  const double c = ja_u.dot(y1);

  // Per type: J^T u restricted to the type, <W_GG, J_a^T Theta_t J_b>, and sum of theta^2 delta^2.
  Eigen::MatrixXd va = Eigen::MatrixXd::Zero(D, T), vb = Eigen::MatrixXd::Zero(D, T);
  Eigen::VectorXd quad = Eigen::VectorXd::Zero(T), s = Eigen::VectorXd::Zero(T);
  const double sign[2] = {-1.0, 1.0};
  for (int p = 0; p < static_cast<int>(pairs.size()); ++p) {
    const int t = pairs[p].type;
    const int ends[2] = {pairs[p].mi, pairs[p].mj};
    s[t] += u[p] * delta[p];
    double form = 0.0;
    for (int e1 = 0; e1 < 2; ++e1) {
      if (ends[e1] < 0) continue;
      va.col(t).segment<3>(3 * ends[e1]) += (sign[e1] * u[p]) * a.q.row(p).transpose();
      vb.col(t).segment<3>(3 * ends[e1]) += (sign[e1] * u[p]) * b.q.row(p).transpose();
      for (int e2 = 0; e2 < 2; ++e2) {
        if (ends[e2] < 0) continue;
        form += sign[e1] * sign[e2] *
                a.q.row(p).dot(WGG.block<3, 3>(3 * ends[e1], 3 * ends[e2]) * b.q.row(p).transpose());
      }
    }
    quad[t] += theta2_[p] * form;
  }
  const double A = quad.sum();

  // d/d log sigma_m^2: the squared-exponential part of the block itself.
  grad[0] += weight * k * (wEE + 2.0 * wEG.dot(jb_u) - 2.0 * wGE.dot(ja_u) + 2.0 * A - 4.0 * c);

  // d/d log theta_t, then d/d log l_t = -d/d log theta_t.
  const double eg = wEG.dot(jb_u), ge = wGE.dot(ja_u);
  for (int t = 0; t < T; ++t) {
    const double dk = -2.0 * k * s[t];
    const double g = wEE * dk + 2.0 * dk * eg + 4.0 * k * wEG.dot(vb.col(t)) - 2.0 * dk * ge -
                     4.0 * k * wGE.dot(va.col(t)) + 2.0 * dk * A + 4.0 * k * quad[t] -
                     4.0 * dk * c - 8.0 * k * (va.col(t).dot(y1) + vb.col(t).dot(y2));
    grad[1 + t] -= weight * g;
  }
}

}  // namespace gprdimer
