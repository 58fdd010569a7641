#pragma once
// Assembly of the joint energy+gradient covariance (point-major) and its robust Cholesky factor.
#include <vector>

#include <Eigen/Dense>

#include "gp/kernel.h"

namespace gprdimer {

// K + noise*I over the observations, point-major: [E_1, g_1, E_2, g_2, ...], written into K
// (resized only when its shape differs, so that repeated assemblies reuse one allocation).
void assemble_covariance(const Kernel& kernel, const std::vector<const Features*>& obs,
                         double noise, Eigen::MatrixXd& K);

// Lower Cholesky factor with escalating jitter: none first, then 1e-8*max(1, mean diag), x10 per
// retry, 8 retries. ok is false when every try failed; jitter is what was added to the diagonal.
// The factor is computed in out.L's own storage (strict upper triangle zero), reused when the
// size is unchanged: fresh n x n allocations in the training loop cost page faults worth about
// a third of its arithmetic.
// append_to_factor grows L in place: its storage may then hold more rows and columns than the
// factor, whose size is n; lower() is the factor's view.
struct Factor {
  Eigen::MatrixXd L;
  Eigen::Index n = 0;
  double jitter = 0.0;
  bool ok = false;

  auto active() const { return L.topLeftCorner(n, n); }
  auto lower() const { return L.topLeftCorner(n, n).triangularView<Eigen::Lower>(); }
};
void robust_cholesky(const Eigen::MatrixXd& K, Factor& out, int max_tries = 9);

// K^-1 = L^-T L^-1 from the lower factor into Kinv, lower triangle only (the upper is left
// unset); work holds L^-1. Panels exploit the triangular shapes of L^-1: about 2n^3/3 flops
// instead of 2n^3 for a dense solve.
void inverse_from_factor(const Eigen::MatrixXd& L, Eigen::MatrixXd& work, Eigen::MatrixXd& Kinv);

// Extends the factor of K by the rows/columns [B; C] of one new observation (B: n x m cross
// covariance, C: m x m block with noise). Returns false (factor untouched) when the new diagonal
// block is not positive definite, so that the caller can refactor from scratch. The storage
// grows by `reserve_rows` beyond the new size when it must grow: copying the whole factor into
// a fresh allocation at every observation was most of an addition's time.
bool append_to_factor(Factor& factor, const Eigen::MatrixXd& B, Eigen::MatrixXd C,
                      Eigen::Index reserve_rows = 0);

}  // namespace gprdimer
