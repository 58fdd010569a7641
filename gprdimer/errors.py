"""Errors that gprdimer raises on purpose, each naming what is wrong."""


class InputError(ValueError):
    """Bad input (file, atom, field, setting) found before any calculation runs."""


class InputNote(UserWarning):
    """What was made of an input that a user may not expect (the frame taken of several, a
    file's charge overridden on the command line); the command line prints it as a note."""


class SCFConvergenceError(RuntimeError):
    """An SCF that did not converge; the message names the system and the last energy change."""


class GPError(RuntimeError):
    """The Gaussian process could not be factorised or evaluated."""
