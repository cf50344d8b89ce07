"""``python -m projections run|rebuild|lag|wait|asof`` (see ``projections.cli``)."""

import sys

from projections.cli import main

sys.exit(main())
