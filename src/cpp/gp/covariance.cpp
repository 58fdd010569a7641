#include "gp/covariance.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gprdimer {

void assemble_covariance(const Kernel& kernel, const std::vector<const Features*>& obs,
                         double noise, Eigen::Ref<Eigen::MatrixXd> K) {
  const int m = kernel.block_size();
  const int M = static_cast<int>(obs.size());
  for (int a = 0; a < M; ++a)
    for (int b = a; b < M; ++b) {
      kernel.block(*obs[a], *obs[b], K.block(a * m, b * m, m, m));
      if (b != a) K.block(b * m, a * m, m, m) = K.block(a * m, b * m, m, m).transpose();
    }
  K.diagonal().array() += noise;
}

void Factor::reserve(Eigen::Index rows) {
  if (L.rows() >= rows) return;
  Eigen::MatrixXd grown(rows, rows);
  grown.topLeftCorner(n, n) = active();
  L.swap(grown);
}

void factor_covariance(const Kernel& kernel, const std::vector<const Features*>& obs,
                       double noise, Factor& out, Eigen::Index capacity, int max_tries) {
  const Eigen::Index n = static_cast<Eigen::Index>(obs.size()) * kernel.block_size();
  out.n = 0;  // nothing of the old factor is kept
  out.reserve(std::max(n, capacity));
  out.ok = false;
  out.jitter = 0.0;
  Eigen::Ref<Eigen::MatrixXd> A = out.L.topLeftCorner(n, n);
  assemble_covariance(kernel, obs, noise, A);
  if (!A.allFinite()) return;  // LLT would not notice: it only checks the pivots' signs
  const double base = 1e-8 * std::max(1.0, A.diagonal().mean());
  for (int attempt = 0; attempt < max_tries; ++attempt) {
    const double jitter = attempt == 0 ? 0.0 : base * std::pow(10.0, attempt - 1);
    if (attempt > 0) {
      assemble_covariance(kernel, obs, noise, A);
      A.diagonal().array() += jitter;
    }
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(A);
    if (llt.info() == Eigen::Success && A.diagonal().allFinite()) {
      A.triangularView<Eigen::StrictlyUpper>().setZero();
      out.n = n;
      out.jitter = jitter;
      out.ok = true;
      return;
    }
  }
}

void inverse_from_factor(const Eigen::Ref<const Eigen::MatrixXd>& L, Eigen::MatrixXd& work,
                         Eigen::MatrixXd& Kinv) {
  const Eigen::Index n = L.rows();
  constexpr Eigen::Index panel = 64;
  // L^-1 column panel by column panel: columns [j, j+b) are zero above row j.
  Eigen::MatrixXd& Linv = work;
  Linv.setZero(n, n);
  for (Eigen::Index j = 0; j < n; j += panel) {
    const Eigen::Index b = std::min(panel, n - j);
    auto X = Linv.block(j, j, n - j, b);
    X.topRows(b).setIdentity();
    L.block(j, j, n - j, n - j).triangularView<Eigen::Lower>().solveInPlace(X);
  }
  // K^-1 = sum over row panels of Linv[rows, 0:end]^T Linv[rows, 0:end]; row panel r is zero
  // to the right of its last row.
  Kinv.setZero(n, n);
  for (Eigen::Index r = 0; r < n; r += panel) {
    const Eigen::Index b = std::min(panel, n - r), end = r + b;
    Kinv.topLeftCorner(end, end).selfadjointView<Eigen::Lower>().rankUpdate(
        Linv.block(r, 0, b, end).transpose());
  }
}

bool append_to_factor(Factor& factor, const Eigen::MatrixXd& B, Eigen::MatrixXd C) {
  const Eigen::Index n = factor.n, m = C.rows();
  C.diagonal().array() += factor.jitter;
  const Eigen::MatrixXd L21t = factor.lower().solve(B);  // n x m
  C.noalias() -= L21t.transpose() * L21t;
  Eigen::LLT<Eigen::MatrixXd> llt(C);
  if (llt.info() != Eigen::Success) return false;
  if (factor.L.rows() < n + m) throw std::logic_error("append_to_factor: storage not reserved");
  factor.L.block(0, n, n, m).setZero();
  factor.L.block(n, 0, m, n) = L21t.transpose();
  factor.L.block(n, n, m, m) = llt.matrixL();
  factor.n = n + m;
  return true;
}

}  // namespace gprdimer
