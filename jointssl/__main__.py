import sys

from jointssl.cli import main

sys.exit(main())
