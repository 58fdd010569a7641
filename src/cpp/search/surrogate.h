#pragma once
// What the inner loop needs of a surrogate surface: its geometry, the observations that draw its
// trust region, and its energy, gradient and variance anywhere. The C++ GP is one; a surface of
// another implementation (the gpytorch backend) comes in as its configurations and a callback.
#include <functional>
#include <vector>

#include <Eigen/Dense>

#include "geometry/inverse_distances.h"
#include "gp/gaussian_process.h"

namespace gprdimer {

// Energy at the positions; the gradient over the moving coordinates; the latent energy variance
// where `variance` is not null.
using SurrogateEvaluate =
    std::function<double(const PositionsRef& positions, Eigen::VectorXd& gradient, double* variance)>;

struct SurrogateModel {
  const InverseDistances& geometry;
  const std::vector<Positions>& configurations;
  const std::vector<Features>& features;
  SurrogateEvaluate evaluate;
};

SurrogateModel surrogate_of(GaussianProcess& gp);

// A surrogate known by its observed configurations and a callback; owns what its model refers to.
class CallbackSurrogate {
 public:
  CallbackSurrogate(InverseDistances geometry, std::vector<Positions> configurations,
                    SurrogateEvaluate evaluate);
  SurrogateModel model() const { return {geometry_, configurations_, features_, evaluate_}; }

 private:
  InverseDistances geometry_;
  std::vector<Positions> configurations_;
  std::vector<Features> features_;
  SurrogateEvaluate evaluate_;
};

}  // namespace gprdimer
