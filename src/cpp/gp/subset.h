#pragma once
// Training-subset selection of the OT-GP variant: farthest-point sampling under a
// permutation-aware per-element transport distance.
#include <string>
#include <vector>

#include "geometry/inverse_distances.h"

namespace gprdimer {

// Minimum-cost perfect assignment (Hungarian algorithm) of a square cost matrix; returns the
// column assigned to each row.
std::vector<int> optimal_assignment(const Eigen::MatrixXd& cost);

// max over elements e of (1/n_e) min_pi sum_i |x_a,i - x_b,pi(i)|, like atoms permuted.
double transport_distance(const PositionsRef& xa, const PositionsRef& xb,
                          const std::vector<std::string>& symbols);

// The `latest` most recent configurations, then farthest-point picks up to k; sorted indices.
std::vector<int> farthest_point_subset(const std::vector<Positions>& configs,
                                       const std::vector<std::string>& symbols, int k, int latest);

}  // namespace gprdimer
