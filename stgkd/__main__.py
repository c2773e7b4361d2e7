"""``python -m stgkd`` (also what ``torchrun -m stgkd`` runs)."""

import sys

from stgkd.cli import main

sys.exit(main())
