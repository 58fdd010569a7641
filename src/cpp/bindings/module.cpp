#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_gp(py::module_& m);
void register_search(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "gprdimer's C++ core: inverse-distance GP and dimer search (private; use gprdimer)";
  register_gp(m);
  register_search(m);
}
