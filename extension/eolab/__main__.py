import sys

from eolab.cli import main

sys.exit(main())
