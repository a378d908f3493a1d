"""``python -m simlab.course_cli``: the course commands alone."""

import sys

from simlab.course_cli import main

sys.exit(main())
