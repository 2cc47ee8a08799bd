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

# Each entry: (config class, {Auto class: model class}). The first model class listed is the one whose
# `save_pretrained` writes the folder; every entry goes into the saved config's `auto_map`.
MODEL_FAMILIES = {
    "deebert": (
        DeeBertConfig,
        {AutoModelForSequenceClassification: DeeBertForSequenceClassification, AutoModel: DeeBertModel},
    ),
    "adapler": (
        AdapLeRConfig,
        {AutoModelForSequenceClassification: AdapLeRBertForSequenceClassification, AutoModel: AdapLeRModel},
    ),
    # HashEE has one configuration per backbone: the BERT classifier and the BART seq2seq model.
    "hashee_bert": (
        HashEEBertConfig,
        {AutoModelForSequenceClassification: HashEEBertForSequenceClassification, AutoModel: HashEEBertModel},
    ),
    "hashee_bart": (
        HashEEBartConfig,
        {AutoModelForSeq2SeqLM: HashEEBartForConditionalGeneration, AutoModel: HashEEBartModel},
    ),
    "depth_adaptive_transformer": (
        DepthAdaptiveTransformerConfig,
        {AutoModelForSeq2SeqLM: DepthAdaptiveTransformer},
    ),
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
