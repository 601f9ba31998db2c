"""``python -m tfm``: the ``tfmc`` command line, for launchers that start modules (``torchrun
--nproc-per-node N -m tfm run FILE --backend torch``)."""

import sys

from .driver.cli import main

sys.exit(main())
