"""`python -m gprdimer` is the `gprdimer` command."""

import sys

from .cli import main

sys.exit(main())
