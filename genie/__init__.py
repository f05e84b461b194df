"""genie: a playable generative world-model engine.

Heavy modules (torch models, the World runtime) load lazily so `import genie` stays cheap.
"""

from genie.errors import GenieError

__version__ = "0.1.0"
__all__ = ["GenieError", "__version__"]
