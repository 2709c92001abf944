"""``python -m fastsep``: the same as the ``fastsep`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
