"""What the command-line tests share: a valid XYZ text and the exit code of one invocation."""

from gprdimer.cli import main

WATER = "3\nwater\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76 0.58\n"


def run(argv):
    """Exit code of `gprdimer argv`, whether main returns it or argparse exits."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code
