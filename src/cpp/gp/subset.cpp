#include "gp/subset.h"

#include <algorithm>
#include <limits>
#include <map>

namespace gprdimer {

std::vector<int> optimal_assignment(const Eigen::MatrixXd& cost) {
  // Shortest augmenting paths with row/column potentials, O(n^3).
  const int n = static_cast<int>(cost.rows());
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0);
  std::vector<int> p(n + 1, 0), way(n + 1, 0);
  for (int i = 1; i <= n; ++i) {
    p[0] = i;
    int j0 = 0;
    std::vector<double> minv(n + 1, inf);
    std::vector<char> used(n + 1, 0);
    do {
      used[j0] = 1;
      const int i0 = p[j0];
      double delta = inf;
      int j1 = 0;
      for (int j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const double cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int j = 0; j <= n; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  std::vector<int> assignment(n, -1);
  for (int j = 1; j <= n; ++j)
    if (p[j] > 0) assignment[p[j] - 1] = j - 1;
  return assignment;
}

double transport_distance(const PositionsRef& xa, const PositionsRef& xb,
                          const std::vector<std::string>& symbols) {
  std::map<std::string, std::vector<int>> groups;
  for (int i = 0; i < static_cast<int>(symbols.size()); ++i) groups[symbols[i]].push_back(i);
  double worst = 0.0;
  for (const auto& [element, idx] : groups) {
    const int n = static_cast<int>(idx.size());
    Eigen::MatrixXd cost(n, n);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) cost(r, c) = (xa.row(idx[r]) - xb.row(idx[c])).norm();
    const std::vector<int> assign = optimal_assignment(cost);
    double total = 0.0;
    for (int r = 0; r < n; ++r) total += cost(r, assign[r]);
    worst = std::max(worst, total / n);
  }
  return worst;
}

std::vector<int> farthest_point_subset(const std::vector<Positions>& configs,
                                       const std::vector<std::string>& symbols, int k, int latest) {
  const int M = static_cast<int>(configs.size());
  std::vector<int> chosen;
  if (k >= M) {
    for (int i = 0; i < M; ++i) chosen.push_back(i);
    return chosen;
  }
  const int start = std::max(0, M - std::max(1, std::min(latest, k)));
  std::vector<double> nearest(M, std::numeric_limits<double>::infinity());
  std::vector<char> taken(M, 0);
  auto take = [&](int c) {
    chosen.push_back(c);
    taken[c] = 1;
    for (int i = 0; i < M; ++i)
      if (!taken[i]) nearest[i] = std::min(nearest[i], transport_distance(configs[i], configs[c], symbols));
  };
  for (int c = start; c < M; ++c) take(c);
  while (static_cast<int>(chosen.size()) < k) {
    int best = -1;
    for (int i = 0; i < M; ++i)
      if (!taken[i] && (best < 0 || nearest[i] > nearest[best])) best = i;
    take(best);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace gprdimer
