from .configuration_deebert import DeeBertConfig
from .modeling_deebert import (
    DeeBertForSequenceClassification,
    DeeBertModel,
    DeeBertPreTrainedModel,
    DeeBertSequenceClassifierOutput,
    prediction_entropy,
)

__all__ = [
    "DeeBertConfig",
    "DeeBertForSequenceClassification",
    "DeeBertModel",
    "DeeBertPreTrainedModel",
    "DeeBertSequenceClassifierOutput",
    "prediction_entropy",
]
