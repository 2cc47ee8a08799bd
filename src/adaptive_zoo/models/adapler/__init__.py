from .configuration_adapler import AdapLeRConfig
from .modeling_adapler import (
    AdapLeRBertForSequenceClassification,
    AdapLeRContributionPredictor,
    AdapLeRModel,
    AdapLeRPreTrainedModel,
    AdapLeRSequenceClassifierOutput,
    amplify_cls,
    dummy_variable,
    inclusive_kl,
    soft_removal,
)

__all__ = [
    "AdapLeRBertForSequenceClassification",
    "AdapLeRConfig",
    "AdapLeRContributionPredictor",
    "AdapLeRModel",
    "AdapLeRPreTrainedModel",
    "AdapLeRSequenceClassifierOutput",
    "amplify_cls",
    "dummy_variable",
    "inclusive_kl",
    "soft_removal",
]
