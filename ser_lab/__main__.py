import sys

from ser_lab.cli import main

sys.exit(main())
