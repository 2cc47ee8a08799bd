"""The zoo's model families, one self-contained Hub-code folder each, and their Auto-class registration."""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

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

# Each family: its config class, the Auto class of its head, the head's model class and the base model's (what
# `AutoModel` loads; None where there is none). HashEE has one configuration per backbone: the BERT classifier and
# the BART seq2seq model.
_FAMILY_CLASSES = [
    (DeeBertConfig, AutoModelForSequenceClassification, DeeBertForSequenceClassification, DeeBertModel),
    (AdapLeRConfig, AutoModelForSequenceClassification, AdapLeRBertForSequenceClassification, AdapLeRModel),
    (HashEEBertConfig, AutoModelForSequenceClassification, HashEEBertForSequenceClassification, HashEEBertModel),
    (HashEEBartConfig, AutoModelForSeq2SeqLM, HashEEBartForConditionalGeneration, HashEEBartModel),
    (DepthAdaptiveTransformerConfig, AutoModelForSeq2SeqLM, DepthAdaptiveTransformer, None),
]

# model_type -> (config class, {Auto class: model class}). The first model class listed is the one whose
# `save_pretrained` writes the folder; every entry goes into the saved config's `auto_map`.
MODEL_FAMILIES = {
    config_class.model_type: (
        config_class, {head_auto_class: head_class, **({AutoModel: base_class} if base_class is not None else {})}
    )
    for config_class, head_auto_class, head_class, base_class in _FAMILY_CLASSES
}


def register_models() -> None:
    """Register every family natively (no trust_remote_code needed with the package installed) and for
    `save_pretrained`'s code copy (so saved folders load anywhere with trust_remote_code)."""
    for model_type, (config_class, auto_models) in MODEL_FAMILIES.items():
        AutoConfig.register(model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        for auto_class, model_class in auto_models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)


register_models()

__all__ = [
    "MODEL_FAMILIES",
    "register_models",
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
