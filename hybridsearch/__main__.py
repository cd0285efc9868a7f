import sys

from hybridsearch.cli import main

sys.exit(main())
