"""``python -m yoso_core.bench --child``: the measuring child process of ``child_measure``."""

import sys

from .memory import _child_main

if __name__ == "__main__" and "--child" in sys.argv:
    sys.exit(_child_main())
