#pragma once
// Assembly of the joint energy+gradient covariance (point-major) and its robust Cholesky factor.
#include <vector>

#include <Eigen/Dense>

#include "gp/kernel.h"

namespace gprdimer {

// K + noise*I over the observations, point-major: [E_1, g_1, E_2, g_2, ...], written into K,
// which has the size already (a block of a larger storage, or a matrix sized by the caller).
void assemble_covariance(const Kernel& kernel, const std::vector<const Features*>& obs,
                         double noise, Eigen::Ref<Eigen::MatrixXd> K);

// A lower Cholesky factor in the top-left n x n block of the storage L (strict upper triangle
// zero there); lower() is the factor's view. The storage may hold more rows and columns than
// the factor: append_to_factor grows the factor into it, and a model with a memory bound keeps
// one storage of the bound's size so that nothing is ever copied into a fresh allocation (a move
// would hold the old and the new copy at once, twice the bound). Pages of the storage become
// resident only as the factor reaches them.
struct Factor {
  Eigen::MatrixXd L;
  Eigen::Index n = 0;
  double jitter = 0.0;
  bool ok = false;

  auto active() const { return L.topLeftCorner(n, n); }
  auto lower() const { return L.topLeftCorner(n, n).triangularView<Eigen::Lower>(); }
  // Storage of at least `rows` rows and columns; the factor is kept.
  void reserve(Eigen::Index rows);
};

// Assembles the covariance of obs into the factor's storage (reserved to `capacity` rows, at
// least the covariance's) and factorises it in place with escalating jitter: none first, then
// 1e-8*max(1, mean diag), x10 per retry, 8 retries, each on a fresh assembly (the factorisation
// overwrote the last). ok is false when every try failed;
// jitter is what was added to the diagonal. Reusing one storage also spares the training loop
// fresh n x n allocations, whose page faults cost about a third of its arithmetic.
void factor_covariance(const Kernel& kernel, const std::vector<const Features*>& obs,
                       double noise, Factor& out, Eigen::Index capacity = 0, int max_tries = 9);

// K^-1 = L^-T L^-1 from the lower factor into Kinv, lower triangle only (the upper is left
// unset); work holds L^-1. Panels exploit the triangular shapes of L^-1: about 2n^3/3 flops
// instead of 2n^3 for a dense solve.
void inverse_from_factor(const Eigen::Ref<const Eigen::MatrixXd>& L, Eigen::MatrixXd& work,
                         Eigen::MatrixXd& Kinv);

// Extends the factor of K by the rows/columns [B; C] of one new observation (B: n x m cross
// covariance, C: m x m block with noise), inside the storage (which must hold n + m rows: see
// Factor::reserve). Returns false (factor untouched) when the new diagonal block is not
// positive definite, so that the caller can refactor from scratch.
bool append_to_factor(Factor& factor, const Eigen::MatrixXd& B, Eigen::MatrixXd C);

}  // namespace gprdimer
