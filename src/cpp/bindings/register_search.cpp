// Bindings of the dimer search: settings structs, the inner loop on the GP, and the rotation and
// translation pieces that the plain dimer drives on the true surface.
#include <pybind11/eigen.h>
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "search/dimer.h"
#include "search/prfo.h"
#include "search/surrogate.h"
#include "search/surrogate_relax.h"
#include "search/trust.h"

namespace py = pybind11;
using namespace gprdimer;

namespace {

using PythonSurface = std::function<py::tuple(const Eigen::VectorXd&)>;

// A Python callable x -> (energy, gradient) as a Surface; the GIL stays held.
Surface from_python(const PythonSurface& fn) {
  return [&fn](const Eigen::VectorXd& x, Eigen::VectorXd& g) {
    py::tuple out = fn(x);
    g = out[1].cast<Eigen::VectorXd>();
    return out[0].cast<double>();
  };
}

// A Python callable (positions, with_variance) -> (energy, gradient over the moving coordinates,
// variance) as a surrogate's evaluation.
SurrogateEvaluate from_python_surrogate(py::function fn) {
  return [fn = std::move(fn)](const PositionsRef& x, Eigen::VectorXd& g, double* variance) {
    py::gil_scoped_acquire gil;
    py::tuple out = fn(Positions(x), variance != nullptr);
    g = out[1].cast<Eigen::VectorXd>();
    if (variance) *variance = out[2].cast<double>();
    return out[0].cast<double>();
  };
}

}  // namespace

void register_search(py::module_& m) {
  py::enum_<RotationMethod>(m, "RotationMethod")
      .value("cg", RotationMethod::ConjugateGradient)
      .value("lbfgs", RotationMethod::LBFGS);

  py::class_<RotationSettings>(m, "RotationSettings")
      .def(py::init<>())
      .def_readwrite("max_rotations", &RotationSettings::max_rotations)
      .def_readwrite("converged_angle", &RotationSettings::converged_angle)
      .def_readwrite("separation", &RotationSettings::separation)
      .def_readwrite("trial_angle", &RotationSettings::trial_angle)
      .def_readwrite("method", &RotationSettings::method)
      .def_readwrite("exact_image", &RotationSettings::exact_image);

  py::class_<TranslationSettings>(m, "TranslationSettings")
      .def(py::init<>())
      .def_readwrite("max_step", &TranslationSettings::max_step)
      .def_readwrite("convex_step", &TranslationSettings::convex_step)
      .def_readwrite("convex_relax", &TranslationSettings::convex_relax)
      .def_readwrite("memory", &TranslationSettings::memory)
      .def_readwrite("initial_inverse_curvature", &TranslationSettings::initial_inverse_curvature);

  py::class_<TrustSettings>(m, "TrustSettings")
      .def(py::init<>())
      .def_readwrite("ratio_window", &TrustSettings::ratio_window)
      .def_readwrite("ratio_at_limit", &TrustSettings::ratio_at_limit)
      .def_readwrite("radius", &TrustSettings::radius)
      .def_readwrite("max_variance", &TrustSettings::max_variance);

  py::class_<InnerSettings>(m, "InnerSettings")
      .def(py::init<>())
      .def_readwrite("max_iterations", &InnerSettings::max_iterations)
      .def_readwrite("force_tolerance", &InnerSettings::force_tolerance)
      .def_readwrite("rotation", &InnerSettings::rotation)
      .def_readwrite("translation", &InnerSettings::translation)
      .def_readwrite("trust", &InnerSettings::trust)
      .def_readwrite("second_order", &InnerSettings::second_order)
      .def_readwrite("hessian_step", &InnerSettings::hessian_step);

  py::class_<RotationResult>(m, "RotationResult")
      .def_readonly("tau", &RotationResult::tau)
      .def_readonly("g1", &RotationResult::g1)
      .def_readonly("curvature", &RotationResult::curvature)
      .def_readonly("last_angle", &RotationResult::last_angle)
      .def_readonly("rotations", &RotationResult::rotations)
      .def_readonly("evaluations", &RotationResult::evaluations)
      .def_readonly("converged", &RotationResult::converged);

  py::class_<InnerResult>(m, "InnerResult")
      .def_readonly("positions", &InnerResult::positions)
      .def_readonly("tau", &InnerResult::tau)
      .def_readonly("gradient", &InnerResult::gradient)
      .def_readonly("energy", &InnerResult::energy)
      .def_readonly("curvature", &InnerResult::curvature)
      .def_readonly("iterations", &InnerResult::iterations)
      .def_readonly("rotations", &InnerResult::rotations)
      .def_property_readonly("stop", [](const InnerResult& r) { return to_string(r.stop); });

  py::class_<CallbackSurrogate>(m, "CallbackSurrogate")
      .def(py::init([](std::vector<std::string> symbols, std::vector<bool> fixed,
                       const Eigen::Matrix3d& cell, std::array<bool, 3> pbc,
                       std::vector<Positions> configurations, py::function evaluate) {
             return CallbackSurrogate(
                 InverseDistances(std::move(symbols), std::move(fixed), cell, pbc),
                 std::move(configurations), from_python_surrogate(std::move(evaluate)));
           }),
           py::arg("symbols"), py::arg("fixed"), py::arg("cell"), py::arg("pbc"),
           py::arg("configurations"), py::arg("evaluate"));

  // On the C++ GP the GIL is released; a callback surrogate calls back into Python and keeps it.
  m.def(
      "relax_on_surrogate",
      [](GaussianProcess& gp, const PositionsRef& start, const Eigen::VectorXd& tau,
         const InnerSettings& settings) {
        return relax_on_surrogate(surrogate_of(gp), start, tau, settings);
      },
      py::arg("gp"), py::arg("start"), py::arg("tau"), py::arg("settings"),
      py::call_guard<py::gil_scoped_release>());
  m.def(
      "relax_on_surrogate",
      [](const CallbackSurrogate& surrogate, const PositionsRef& start, const Eigen::VectorXd& tau,
         const InnerSettings& settings) {
        return relax_on_surrogate(surrogate.model(), start, tau, settings);
      },
      py::arg("gp"), py::arg("start"), py::arg("tau"), py::arg("settings"));
  m.def(
      "rotate_on_surrogate",
      [](GaussianProcess& gp, const PositionsRef& midpoint, const Eigen::VectorXd& tau,
         const RotationSettings& settings) {
        return rotate_on_surrogate(surrogate_of(gp), midpoint, tau, settings);
      },
      py::arg("gp"), py::arg("midpoint"), py::arg("tau"), py::arg("settings"),
      py::call_guard<py::gil_scoped_release>());
  m.def(
      "rotate_on_surrogate",
      [](const CallbackSurrogate& surrogate, const PositionsRef& midpoint,
         const Eigen::VectorXd& tau, const RotationSettings& settings) {
        return rotate_on_surrogate(surrogate.model(), midpoint, tau, settings);
      },
      py::arg("gp"), py::arg("midpoint"), py::arg("tau"), py::arg("settings"));
  m.def(
      "within_transport_radius",
      [](GaussianProcess& gp, const PositionsRef& positions, double radius) {
        return within_transport_radius(surrogate_of(gp), positions, radius);
      },
      py::arg("gp"), py::arg("positions"), py::arg("radius"));
  m.def("adaptive_trust_radius", &adaptive_trust_radius, py::arg("n_observations"),
        py::arg("n_atoms"));

  m.def(
      "rotate_dimer",
      [](const PythonSurface& fn, const Eigen::VectorXd& x0, const Eigen::VectorXd& g0,
         const Eigen::VectorXd& tau, std::optional<Eigen::VectorXd> g1,
         const RotationSettings& settings) {
        return rotate_dimer(from_python(fn), x0, g0, tau, g1 ? &*g1 : nullptr, settings);
      },
      py::arg("surface"), py::arg("x0"), py::arg("g0"), py::arg("tau"), py::arg("g1"),
      py::arg("settings"));
  m.def("estimated_rotation_angle", &estimated_rotation_angle, py::arg("g0"), py::arg("g1"),
        py::arg("tau"), py::arg("separation"));
  m.def("dimer_curvature", &dimer_curvature, py::arg("g0"), py::arg("g1"), py::arg("tau"),
        py::arg("separation"));

  py::class_<Translator>(m, "Translator")
      .def(py::init<int, const TranslationSettings&>(), py::arg("dims"), py::arg("settings"))
      .def("step", &Translator::step, py::arg("x"), py::arg("g0"), py::arg("tau"), py::arg("curvature"))
      .def("reset", &Translator::reset);

  py::class_<PrfoStep>(m, "PrfoStep")
      .def_readonly("step", &PrfoStep::step)
      .def_readonly("mode", &PrfoStep::mode)
      .def_readonly("curvature", &PrfoStep::curvature);
  m.def("prfo_step", &prfo_step, py::arg("hessian"), py::arg("gradient"), py::arg("rigid"),
        py::arg("previous_mode"));
  m.def(
      "finite_difference_hessian",
      [](const PythonSurface& fn, const Eigen::VectorXd& x, double h) {
        return finite_difference_hessian(from_python(fn), x, h);
      },
      py::arg("surface"), py::arg("x"), py::arg("h"));
  m.def(
      "rigid_motions",
      [](std::vector<std::string> symbols, std::vector<bool> fixed, const Eigen::Matrix3d& cell,
         std::array<bool, 3> pbc, const PositionsRef& positions) {
        return rigid_motions(InverseDistances(std::move(symbols), std::move(fixed), cell, pbc),
                             positions);
      },
      py::arg("symbols"), py::arg("fixed"), py::arg("cell"), py::arg("pbc"), py::arg("positions"));
}
