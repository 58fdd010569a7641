#include "search/surrogate.h"

#include <utility>

namespace gprdimer {

SurrogateModel surrogate_of(GaussianProcess& gp) {
  return {gp.geometry(), gp.configurations(), gp.features(),
          [&gp](const PositionsRef& x, Eigen::VectorXd& g, double* variance) {
            return gp.evaluate(x, g, variance);
          }};
}

CallbackSurrogate::CallbackSurrogate(InverseDistances geometry,
                                     std::vector<Positions> configurations,
                                     SurrogateEvaluate evaluate)
    : geometry_(std::move(geometry)),
      configurations_(std::move(configurations)),
      evaluate_(std::move(evaluate)) {
  features_.reserve(configurations_.size());
  for (const Positions& p : configurations_) features_.push_back(geometry_.compute(p));
}

}  // namespace gprdimer
