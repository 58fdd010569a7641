#include "search/prfo.h"

#include <cmath>
#include <stdexcept>

namespace gprdimer {

Eigen::MatrixXd finite_difference_hessian(const Surface& surface, const Eigen::VectorXd& x,
                                          double h) {
  const Eigen::Index d = x.size();
  Eigen::MatrixXd hessian(d, d);
  Eigen::VectorXd xp = x, gp, gm;
  for (Eigen::Index i = 0; i < d; ++i) {
    xp(i) = x(i) + h;
    surface(xp, gp);
    xp(i) = x(i) - h;
    surface(xp, gm);
    xp(i) = x(i);
    hessian.col(i) = (gp - gm) / (2.0 * h);
  }
  return 0.5 * (hessian + hessian.transpose());
}

Eigen::MatrixXd rigid_motions(const InverseDistances& geometry, const PositionsRef& positions) {
  const int n = geometry.n_atoms();
  if (geometry.n_moving() != n || n < 2) return Eigen::MatrixXd(geometry.dims(), 0);
  const int kinds = geometry.periodic() ? 3 : 6;
  Eigen::MatrixXd motions = Eigen::MatrixXd::Zero(3 * n, kinds);
  const Eigen::RowVector3d centroid = positions.colwise().mean();
  for (int a = 0; a < n; ++a) {
    for (int k = 0; k < 3; ++k) motions(3 * a + k, k) = 1.0;
    if (kinds == 6) {
      const Eigen::Vector3d r = (positions.row(a) - centroid).transpose();
      for (int k = 0; k < 3; ++k)
        motions.block<3, 1>(3 * a, 3 + k) = Eigen::Vector3d::Unit(k).cross(r);
    }
  }
  // Orthonormalise, dropping the rotation about the axis of a linear molecule. A molecule whose
  // atoms lie within 0.01 Å of a line counts as linear (the singular value of that rotation is
  // the root sum of the atoms' squared distances from the axis): a converged search leaves a
  // linear saddle bent by up to fmax over the bend's curvature, and keeping that vanishing
  // rotation would normalise it into a "rigid" direction that is really the second bend.
  constexpr double kLinearExtent = 0.01;  // Å
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(motions, Eigen::ComputeThinU);
  const Eigen::Index rank = (svd.singularValues().array() > kLinearExtent).count();
  return svd.matrixU().leftCols(rank);
}

PrfoStep prfo_step(const Eigen::MatrixXd& hessian, const Eigen::VectorXd& gradient,
                   const Eigen::MatrixXd& rigid, const Eigen::VectorXd& previous_mode) {
  const Eigen::Index d = gradient.size();
  const Eigen::MatrixXd projector = Eigen::MatrixXd::Identity(d, d) - rigid * rigid.transpose();
  Eigen::MatrixXd h = projector * hessian * projector;
  // The rigid motions get an eigenvalue far above the others, so that neither the uphill nor
  // the downhill partition uses them.
  const double shift = 1.0 + 2.0 * hessian.norm();  // the Frobenius norm bounds every eigenvalue
  h += shift * rigid * rigid.transpose();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(h);
  if (eig.info() != Eigen::Success) throw std::runtime_error("P-RFO: Hessian eigensolver failed");
  const Eigen::VectorXd b = eig.eigenvalues();
  const Eigen::MatrixXd& v = eig.eigenvectors();
  const Eigen::VectorXd f = v.transpose() * (projector * gradient);
  const Eigen::Index internal = d - rigid.cols();

  PrfoStep out;
  out.curvature = b(0);
  out.mode = v.col(0);
  if (previous_mode.size() == d && out.mode.dot(previous_mode) < 0.0) out.mode = -out.mode;
  // Uphill along the lowest mode: the larger root of the 2x2 RFO problem.
  const double lambda_p = 0.5 * b(0) + 0.5 * std::sqrt(b(0) * b(0) + 4.0 * f(0) * f(0));
  Eigen::VectorXd coeff = Eigen::VectorXd::Zero(d);
  if (std::abs(b(0) - lambda_p) > 0.0) coeff(0) = -f(0) / (b(0) - lambda_p);
  // Downhill along the rest: the lowest eigenvalue of their augmented Hessian.
  const Eigen::Index m = internal - 1;
  if (m > 0) {
    Eigen::MatrixXd aug = Eigen::MatrixXd::Zero(m + 1, m + 1);
    aug.topLeftCorner(m, m) = b.segment(1, m).asDiagonal();
    aug.topRightCorner(m, 1) = f.segment(1, m);
    aug.bottomLeftCorner(1, m) = f.segment(1, m).transpose();
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> low(aug, Eigen::EigenvaluesOnly);
    const double lambda_n = std::min(low.eigenvalues()(0), 0.0);
    for (Eigen::Index i = 1; i <= m; ++i) {
      const double denominator = b(i) - lambda_n;
      if (denominator > 0.0) coeff(i) = -f(i) / denominator;
    }
  }
  out.step = v * coeff;
  return out;
}

}  // namespace gprdimer
