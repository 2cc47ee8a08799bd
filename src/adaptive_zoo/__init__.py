"""adaptive-zoo: input-adaptive transformers for the Hugging Face ecosystem.

Importing the package registers every method (adaptive_zoo.methods) and its model families with the
transformers Auto classes.
"""

from .methods import METHODS  # noqa: F401  (registration happens on import)

__version__ = "0.1.0"
