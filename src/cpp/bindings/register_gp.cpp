// Bindings of the GP core: numpy <-> Eigen conversion and the GIL, nothing else.
#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>

#include "gp/gaussian_process.h"
#include "gp/kernel.h"
#include "gp/subset.h"

namespace py = pybind11;
using namespace gprdimer;

namespace {

InverseDistances make_geometry(std::vector<std::string> symbols, std::vector<bool> fixed,
                               const Eigen::Matrix3d& cell, std::array<bool, 3> pbc) {
  return InverseDistances(std::move(symbols), std::move(fixed), cell, pbc);
}

}  // namespace

void register_gp(py::module_& m) {
  py::class_<TrainingReport>(m, "TrainingReport")
      .def_readonly("iterations", &TrainingReport::iterations)
      .def_readonly("evaluations", &TrainingReport::evaluations)
      .def_readonly("converged", &TrainingReport::converged)
      .def_readonly("failed", &TrainingReport::failed)
      .def_readonly("reinitialised", &TrainingReport::reinitialised)
      .def_readonly("objective", &TrainingReport::objective)
      .def_readonly("kept", &TrainingReport::kept)
      .def_readonly("subset", &TrainingReport::subset);

  py::class_<PriorSettings>(m, "PriorSettings")
      .def(py::init<>())
      .def_readwrite("noise", &PriorSettings::noise)
      .def_readwrite("prior_dof", &PriorSettings::prior_dof)
      .def_readwrite("variance_barrier", &PriorSettings::variance_barrier);

  py::class_<SCGSettings>(m, "SCGSettings")
      .def(py::init<>())
      .def_readwrite("max_iterations", &SCGSettings::max_iterations)
      .def_readwrite("tol_sol", &SCGSettings::tol_sol)
      .def_readwrite("tol_func", &SCGSettings::tol_func)
      .def_readwrite("lambda_init", &SCGSettings::lambda_init)
      .def_readwrite("lambda_limit", &SCGSettings::lambda_limit);

  py::class_<GPSettings>(m, "GPSettings")
      .def(py::init<>())
      .def_readwrite("prior", &GPSettings::prior)
      .def_readwrite("scg", &GPSettings::scg)
      .def_readwrite("training_subset", &GPSettings::training_subset)
      .def_readwrite("latest", &GPSettings::latest)
      .def_readwrite("retrain_tolerance", &GPSettings::retrain_tolerance)
      .def_readwrite("max_rows", &GPSettings::max_rows);

  py::class_<GaussianProcess>(m, "GaussianProcess")
      .def(py::init([](std::vector<std::string> symbols, std::vector<bool> fixed,
                       const Eigen::Matrix3d& cell, std::array<bool, 3> pbc,
                       const GPSettings& settings) {
             return GaussianProcess(make_geometry(std::move(symbols), std::move(fixed), cell, pbc),
                                    settings);
           }),
           py::arg("symbols"), py::arg("fixed"), py::arg("cell"), py::arg("pbc"),
           py::arg("settings"))
      .def("add", &GaussianProcess::add, py::arg("positions"), py::arg("energy"), py::arg("forces"),
           py::call_guard<py::gil_scoped_release>())
      .def("train", &GaussianProcess::train, py::call_guard<py::gil_scoped_release>())
      .def(
          "predict",
          [](GaussianProcess& gp, const PositionsRef& x, bool with_variance) {
            Eigen::VectorXd g;
            double variance = std::numeric_limits<double>::quiet_NaN();
            double energy;
            {
              py::gil_scoped_release release;
              energy = gp.evaluate(x, g, with_variance ? &variance : nullptr);
            }
            Positions forces = -gp.geometry().scatter(g);
            return py::make_tuple(energy, forces, variance);
          },
          py::arg("positions"), py::arg("with_variance") = true)
      .def(
          "objective",
          [](const GaussianProcess& gp, const Eigen::VectorXd& log_w) {
            Eigen::VectorXd grad;
            double value;
            {
              py::gil_scoped_release release;
              value = gp.objective(log_w, &grad);
            }
            return py::make_tuple(value, grad);
          },
          py::arg("log_w"))
      .def_property("log_hyperparameters", &GaussianProcess::log_hyperparameters,
                    &GaussianProcess::set_log_hyperparameters)
      .def_property("sigma_c2", &GaussianProcess::sigma_c2, &GaussianProcess::set_sigma_c2)
      .def("reset_hyperparameters", &GaussianProcess::reset_hyperparameters)
      .def_property_readonly("jitter", &GaussianProcess::jitter)
      .def_property_readonly("n_observations", &GaussianProcess::n_observations)
      .def_property_readonly("configurations", &GaussianProcess::configurations)
      .def_property_readonly("type_names",
                             [](const GaussianProcess& gp) { return gp.geometry().type_names(); });

  m.def(
      "features",
      [](std::vector<std::string> symbols, std::vector<bool> fixed, const Eigen::Matrix3d& cell,
         std::array<bool, 3> pbc, const PositionsRef& x) {
        const InverseDistances geom = make_geometry(std::move(symbols), std::move(fixed), cell, pbc);
        const Features feat = geom.compute(x);
        // Dense Jacobian, for tests: column by column from the sparse form.
        Eigen::MatrixXd J(geom.n_pairs(), geom.dims());
        for (int d = 0; d < geom.dims(); ++d)
          J.col(d) = geom.j_times(feat, Eigen::VectorXd::Unit(geom.dims(), d));
        return py::make_tuple(feat.f, J);
      },
      py::arg("symbols"), py::arg("fixed"), py::arg("cell"), py::arg("pbc"), py::arg("positions"));
  m.def(
      "covariance_block",
      [](std::vector<std::string> symbols, std::vector<bool> fixed, const Eigen::Matrix3d& cell,
         std::array<bool, 3> pbc, const Eigen::VectorXd& log_w, double sigma_c2,
         const PositionsRef& xa, const PositionsRef& xb) {
        const InverseDistances geom = make_geometry(std::move(symbols), std::move(fixed), cell, pbc);
        const Kernel kernel(geom, log_w, sigma_c2);
        Eigen::MatrixXd out(kernel.block_size(), kernel.block_size());
        kernel.block(geom.compute(xa), geom.compute(xb), out);
        return out;
      },
      py::arg("symbols"), py::arg("fixed"), py::arg("cell"), py::arg("pbc"), py::arg("log_w"),
      py::arg("sigma_c2"), py::arg("xa"), py::arg("xb"));
  m.def("transport_distance", &transport_distance, py::arg("xa"), py::arg("xb"), py::arg("symbols"));
  m.def("farthest_point_subset", &farthest_point_subset, py::arg("configurations"),
        py::arg("symbols"), py::arg("k"), py::arg("latest"));
}
