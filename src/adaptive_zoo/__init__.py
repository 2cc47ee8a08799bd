"""adaptive-zoo: input-adaptive transformers for the Hugging Face ecosystem.

Importing the package registers every model family with the transformers Auto classes.
"""

from .models import MODEL_FAMILIES, register_models  # noqa: F401  (registration happens on import)

__version__ = "0.1.0"
