"""``python -m nni_decouple.bench JOB.json RESULT.json``: one isolated benchmark job (see :mod:`.harness`)."""

import sys

from . import cost, floor, quality  # noqa: F401  (each registers its job kinds)
from .harness import worker

if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
