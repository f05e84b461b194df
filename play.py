"""Play a genie world with the keyboard: python play.py [--world BUNDLE] [--prompt IMAGE|VIDEO|SHARD] ...

The player lives in genie/play/player.py (also `genie play ...`); `python play.py --help` lists the keys.
"""

import sys

from genie.play.player import main

if __name__ == "__main__":
    sys.exit(main())
