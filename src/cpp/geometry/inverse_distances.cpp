#include "geometry/inverse_distances.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace gprdimer {

InverseDistances::InverseDistances(std::vector<std::string> symbols, std::vector<bool> fixed,
                                   const Eigen::Matrix3d& cell, std::array<bool, 3> pbc)
    : symbols_(std::move(symbols)), fixed_(std::move(fixed)), cell_(cell), pbc_(pbc) {
  const int n = static_cast<int>(symbols_.size());
  if (fixed_.empty()) fixed_.assign(n, false);
  if (static_cast<int>(fixed_.size()) != n)
    throw std::invalid_argument("fixed mask has " + std::to_string(fixed_.size()) +
                                " entries for " + std::to_string(n) + " atoms");
  periodic_ = pbc_[0] || pbc_[1] || pbc_[2];
  if (periodic_) {
    if (std::abs(cell_.determinant()) < 1e-12)
      throw std::invalid_argument("periodic boundary conditions need a cell of non-zero volume");
    inverse_cell_ = cell_.inverse();
  }
  std::vector<int> moving_index(n, -1);
  for (int a = 0; a < n; ++a)
    if (!fixed_[a]) {
      moving_index[a] = static_cast<int>(moving_.size());
      moving_.push_back(a);
    }
  if (moving_.empty()) throw std::invalid_argument("every atom is fixed: nothing can move");

  std::map<std::string, int> type_of;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) {
      if (fixed_[i] && fixed_[j]) continue;  // constant: carries no information
      const std::string& a = std::min(symbols_[i], symbols_[j]);
      const std::string& b = std::max(symbols_[i], symbols_[j]);
      const std::string key = a + "-" + b;
      auto it = type_of.find(key);
      if (it == type_of.end()) {
        it = type_of.emplace(key, static_cast<int>(type_names_.size())).first;
        type_names_.push_back(key);
      }
      pairs_.push_back({i, j, moving_index[i], moving_index[j], it->second});
    }
  if (pairs_.empty()) throw std::invalid_argument("a GP on inverse distances needs at least two atoms");
}

Eigen::Vector3d InverseDistances::displacement(const PositionsRef& x, int i, int j) const {
  Eigen::Vector3d d = (x.row(i) - x.row(j)).transpose();
  if (!periodic_) return d;
  Eigen::RowVector3d s = d.transpose() * inverse_cell_;
  for (int k = 0; k < 3; ++k)
    if (pbc_[k]) s[k] -= std::round(s[k]);
  return (s * cell_).transpose();
}

Features InverseDistances::compute(const PositionsRef& x) const {
  if (x.rows() != n_atoms())
    throw std::invalid_argument("positions have " + std::to_string(x.rows()) + " rows for " +
                                std::to_string(n_atoms()) + " atoms");
  Features out;
  const int P = n_pairs();
  out.f.resize(P);
  out.q.resize(P, 3);
  for (int p = 0; p < P; ++p) {
    const Pair& pr = pairs_[p];
    const Eigen::Vector3d d = displacement(x, pr.i, pr.j);
    const double r2 = d.squaredNorm();
    if (!(r2 > 0.0))
      throw std::invalid_argument("atoms " + std::to_string(pr.i) + " and " + std::to_string(pr.j) +
                                  " coincide");
    const double r = std::sqrt(r2);
    out.f[p] = 1.0 / r;
    out.q.row(p) = d.transpose() / (r2 * r);
  }
  return out;
}

Eigen::VectorXd InverseDistances::moving_coordinates(const PositionsRef& x) const {
  Eigen::VectorXd out(dims());
  for (int m = 0; m < n_moving(); ++m) out.segment<3>(3 * m) = x.row(moving_[m]).transpose();
  return out;
}

Positions InverseDistances::scatter(const Eigen::Ref<const Eigen::VectorXd>& v) const {
  Positions out = Positions::Zero(n_atoms(), 3);
  for (int m = 0; m < n_moving(); ++m) out.row(moving_[m]) = v.segment<3>(3 * m).transpose();
  return out;
}

void InverseDistances::add_jt(const Features& feat, const Eigen::Ref<const Eigen::VectorXd>& v,
                              double scale, Eigen::Ref<Eigen::VectorXd> out) const {
  const int P = n_pairs();
  for (int p = 0; p < P; ++p) {
    const Pair& pr = pairs_[p];
    const double s = scale * v[p];
    if (s == 0.0) continue;
    if (pr.mi >= 0) out.segment<3>(3 * pr.mi) -= s * feat.q.row(p).transpose();
    if (pr.mj >= 0) out.segment<3>(3 * pr.mj) += s * feat.q.row(p).transpose();
  }
}

Eigen::VectorXd InverseDistances::j_times(const Features& feat,
                                          const Eigen::Ref<const Eigen::VectorXd>& c) const {
  const int P = n_pairs();
  Eigen::VectorXd out(P);
  for (int p = 0; p < P; ++p) {
    const Pair& pr = pairs_[p];
    double acc = 0.0;
    if (pr.mi >= 0) acc -= feat.q.row(p).dot(c.segment<3>(3 * pr.mi));
    if (pr.mj >= 0) acc += feat.q.row(p).dot(c.segment<3>(3 * pr.mj));
    out[p] = acc;
  }
  return out;
}

}  // namespace gprdimer
