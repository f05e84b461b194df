"""genie: a playable generative world-model engine.

`from genie import World` loads the runtime lazily, so `import genie` (and the data commands)
stay cheap and do not import torch.
"""

from genie.errors import GenieError
from genie.version import __version__

__all__ = ["GenieError", "World", "__version__"]


def __getattr__(name: str):
    if name == "World":
        from genie.world import World

        return World
    raise AttributeError(f"module 'genie' has no attribute {name!r}")
