import sys

from jka.cli import main

sys.exit(main())
