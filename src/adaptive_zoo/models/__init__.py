"""The zoo's model families, one self-contained Hub-code folder each. Their Auto-class registration is the method
registry's (`adaptive_zoo.methods`)."""

from .adapler import AdapLeRBertForSequenceClassification, AdapLeRConfig, AdapLeRModel
from .dat import DepthAdaptiveTransformer, DepthAdaptiveTransformerConfig
from .deebert import DeeBertConfig, DeeBertForSequenceClassification, DeeBertModel
from .hashee import (
    HashEEBartConfig,
    HashEEBartForConditionalGeneration,
    HashEEBartModel,
    HashEEBertConfig,
    HashEEBertForSequenceClassification,
    HashEEBertModel,
)

__all__ = [
    "AdapLeRBertForSequenceClassification",
    "AdapLeRConfig",
    "AdapLeRModel",
    "DeeBertConfig",
    "DeeBertForSequenceClassification",
    "DeeBertModel",
    "DepthAdaptiveTransformer",
    "DepthAdaptiveTransformerConfig",
    "HashEEBartConfig",
    "HashEEBartForConditionalGeneration",
    "HashEEBartModel",
    "HashEEBertConfig",
    "HashEEBertForSequenceClassification",
    "HashEEBertModel",
]
