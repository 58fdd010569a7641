"""Errors that gprdimer raises on purpose, each naming what is wrong."""


class InputError(ValueError):
    """Bad input (file, atom, field, setting) found before any calculation runs."""


class SCFConvergenceError(RuntimeError):
    """An SCF that did not converge; the message names the system and the last energy change."""


class GPError(RuntimeError):
    """The Gaussian process could not be factorised or evaluated."""
