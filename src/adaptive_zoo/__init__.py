"""adaptive-zoo: input-adaptive transformers for the Hugging Face ecosystem."""

__version__ = "0.1.0"
