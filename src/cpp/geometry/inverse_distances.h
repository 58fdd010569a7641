#pragma once
// Inverse inter-atomic distances, the features of the GP kernel, and their sparse Jacobian.
#include <array>
#include <string>
#include <vector>

#include <Eigen/Dense>

namespace gprdimer {

using Positions = Eigen::Matrix<double, Eigen::Dynamic, 3, Eigen::RowMajor>;
using PositionsRef = Eigen::Ref<const Positions>;

// A feature f_p = 1/r_ij. mi/mj are the moving-atom indices of i and j, or -1 for a fixed atom.
struct Pair {
  int i, j;
  int mi, mj;
  int type;
};

// Features of one configuration. Row p of q is (x_i - x_j)/r^3: df_p/dx_i = -q_p, df_p/dx_j = +q_p.
// The Jacobian is kept in this sparse form because every row has at most six non-zeros.
struct Features {
  Eigen::VectorXd f;
  Positions q;
};

class InverseDistances {
 public:
  // cell rows are lattice vectors (ASE convention); pbc marks the periodic directions.
  InverseDistances(std::vector<std::string> symbols, std::vector<bool> fixed,
                   const Eigen::Matrix3d& cell = Eigen::Matrix3d::Zero(),
                   std::array<bool, 3> pbc = {false, false, false});

  Features compute(const PositionsRef& positions) const;

  int n_atoms() const { return static_cast<int>(symbols_.size()); }
  int n_moving() const { return static_cast<int>(moving_.size()); }
  int dims() const { return 3 * n_moving(); }
  int n_pairs() const { return static_cast<int>(pairs_.size()); }
  int n_types() const { return static_cast<int>(type_names_.size()); }
  const std::vector<Pair>& pairs() const { return pairs_; }
  const std::vector<std::string>& type_names() const { return type_names_; }
  const std::vector<int>& moving_atoms() const { return moving_; }
  const std::vector<std::string>& symbols() const { return symbols_; }
  bool periodic() const { return periodic_; }

  // The D = 3*n_moving coordinates the GP works on, and the inverse map for gradients.
  Eigen::VectorXd moving_coordinates(const PositionsRef& positions) const;
  Positions scatter(const Eigen::Ref<const Eigen::VectorXd>& moving_values) const;

  // Displacement x_i - x_j, wrapped to the nearest image along the periodic directions.
  Eigen::Vector3d displacement(const PositionsRef& positions, int i, int j) const;

  // J^T v for a feature-space vector v (length P): a D-vector.
  void add_jt(const Features& feat, const Eigen::Ref<const Eigen::VectorXd>& v, double scale,
              Eigen::Ref<Eigen::VectorXd> out) const;
  // J c for a coordinate-space vector c (length D): a P-vector.
  Eigen::VectorXd j_times(const Features& feat, const Eigen::Ref<const Eigen::VectorXd>& c) const;

 private:
  std::vector<std::string> symbols_;
  std::vector<bool> fixed_;
  std::vector<int> moving_;
  std::vector<Pair> pairs_;
  std::vector<std::string> type_names_;
  Eigen::Matrix3d cell_;
  Eigen::Matrix3d inverse_cell_;
  std::array<bool, 3> pbc_;
  bool periodic_;
};

}  // namespace gprdimer
