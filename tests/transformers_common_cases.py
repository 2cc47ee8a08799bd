"""The harness of transformers' own model contract on every zoo class (the tests are in
tests/test_transformers_common_*.py, one file per group of families, so that pytest-xdist spreads them over the
workers): `ModelTesterMixin` (tests/test_modeling_common.py) and
`ConfigTester` (tests/test_configuration_common.py) from the sdist of the installed transformers release (fetched by
tests/transformers_common.py), with adaptivity off (`adaptive=False`) and on.

One unittest class per zoo class and mode (`all_model_classes` holds that one class), so that every count and every
skip is per class. The configs are the zoo testers' own (tests/test_deebert.py, test_adapler.py, test_hashee.py,
test_dat.py) at transformers' tiny sizes: 2 layers (`test_num_layers_is_small`), batch 13, 7 tokens.

Every test that does not pass is skipped by name, with a one-line reason, in `skip_reasons()`; transformers' own
skips (GPU-only, `@slow`, ...) keep transformers' reasons. The reasons name a refusal of the README's "Standard
switches" table, or why a test's assumption does not hold for the class. `DEFECTS` holds the failures that are
defects being fixed: delete an entry once its fix lands and the test runs.
"""

from __future__ import annotations

import math
import os
import unittest
from unittest import mock

import pytest
import torch
from transformers_common import CommonTestsUnavailable, common_tests_package, missing_from_sdist

try:
    SDIST_FOLDER, modeling_common, configuration_common = common_tests_package()
except CommonTestsUnavailable as error:
    if os.environ.get("CI"):
        raise  # CI reaches PyPI: these tests must run there
    pytest.skip(f"transformers' common tests are not available offline: {error}", allow_module_level=True)
except ImportError as error:
    pytest.skip(f"transformers' common tests need a test dependency that is not installed ({error}); "
                "install the `test` extra: pip install -e '.[test]'", allow_module_level=True)

import test_dat  # noqa: E402
from test_adapler import AdapLeRModelTester, AdapLeRRobertaModelTester  # noqa: E402
from test_deebert import DeeBertModelTester, DeeRobertaModelTester  # noqa: E402
from test_hashee import HashEEBartModelTester, HashEEBertModelTester, HashEERobertaModelTester, routing_table  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402

from adaptive_zoo.models import adapler, dat, deebert, hashee  # noqa: E402

ModelTesterMixin = modeling_common.ModelTesterMixin
ConfigTester = configuration_common.ConfigTester
ids_tensor = modeling_common.ids_tensor
random_attention_mask = modeling_common.random_attention_mask
MISSING = missing_from_sdist(SDIST_FOLDER)


# ---------------------------------------------------------------------------------------------------------------
# Model testers: transformers' BertModelTester / BartModelTester shape, the zoo testers' configs
# ---------------------------------------------------------------------------------------------------------------


class EncoderTester:
    """What `ModelTesterMixin` reads from `self.model_tester`, as transformers' BertModelTester provides it."""

    batch_size = 13
    seq_length = 7
    is_training = True
    num_hidden_layers = 2
    num_choices = 4

    def __init__(self, parent, family):
        self.parent = parent
        self.family = family
        config = self.get_config()
        self.vocab_size = config.vocab_size
        self.hidden_size = config.hidden_size
        self.num_attention_heads = config.num_attention_heads
        self.encoder_seq_length = self.seq_length

    def get_config(self):
        return self.family.get_config()

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        inputs = {"input_ids": input_ids, "attention_mask": random_attention_mask([self.batch_size, self.seq_length])}
        if config.type_vocab_size > 1:
            inputs["token_type_ids"] = ids_tensor([self.batch_size, self.seq_length], config.type_vocab_size)
        return config, inputs


class Seq2SeqTester(EncoderTester):
    """transformers' BartModelTester's inputs: source ids clamped above the special ids and ended by EOS, random
    decoder ids, masks that hide padding."""

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(5)
        input_ids[:, -1] = config.eos_token_id
        decoder_input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        inputs = {
            "input_ids": input_ids,
            "attention_mask": input_ids.ne(config.pad_token_id),
            "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": decoder_input_ids.ne(config.pad_token_id),
        }
        return config, inputs


# ---------------------------------------------------------------------------------------------------------------
# The zoo's classes, each with its config at 2 layers, adaptivity off or on
# ---------------------------------------------------------------------------------------------------------------


class Family:
    """`get_config(adaptive)` from the zoo tester; `adaptive_settings`: what makes the class take its adaptive path."""

    tester_class = EncoderTester
    adaptive_settings: dict = {}
    # tiny.py's sizes, except 2 layers
    shape = dict(num_hidden_layers=2)

    def __init__(self, name, zoo_tester, model_classes, vanilla):
        self.name, self.zoo_tester, self.model_classes, self.vanilla = name, zoo_tester, model_classes, vanilla
        self.adaptive = False

    def get_config(self):
        """The zoo tester's config (4 layers), rebuilt at `shape`'s 2 layers with the mode's settings."""
        fields = self.zoo_tester.get_config().to_diff_dict()
        fields.pop("transformers_version", None)
        fields.pop("model_type", None)
        for derived in ("num_buckets", "eta", "theta"):  # sized by the layer count: default them at 2 layers
            fields.pop(derived, None)
        settings = {**self.shape, "adaptive": self.adaptive, **(self.adaptive_settings if self.adaptive else {})}
        return type(self.zoo_tester.get_config())(**{**fields, **settings})

    def patches(self):
        return []

    def config_tester_settings(self) -> dict:
        return {**self.shape, "adaptive": self.adaptive, **(self.adaptive_settings if self.adaptive else {})}


class DeeBertFamily(Family):
    # 3 labels: every off-ramp entropy is below ln 3, so every row leaves at the first off-ramp (layer 1 of 2)
    adaptive_settings = dict(entropy_threshold=math.log(3))


class AdapLeRFamily(Family):
    # η = 1 (the default) at each layer: tokens scored below the uniform level are removed
    shape = dict(num_hidden_layers=2, eta=[1.0, 1.0])


class HashEEFamily(Family):
    def patches(self):
        """A HashEE model built from a config has an all-zero hash table, which an adaptive forward refuses: attach
        tests/test_hashee.py's routing table after each construction (as `hash build` would); `from_pretrained`
        then loads the saved table over it."""
        patches = []
        for model_class in self.model_classes:
            original = model_class.__init__

            def init(model, config, *args, _original=original, **kwargs):
                _original(model, config, *args, **kwargs)
                for module in model.modules():
                    if (isinstance(module, hashee.modeling_hashee.HashTableMixin)
                            and module.hash_table.device.type != "meta" and module.config.vocab_size > 4):
                        with torch.no_grad():
                            module.hash_table.copy_(routing_table(module.config))

            patches.append(mock.patch.object(model_class, "__init__", init))
        return patches


class HashEEBartFamily(HashEEFamily):
    tester_class = Seq2SeqTester
    shape = dict(encoder_layers=2, decoder_layers=2)


class DATFamily(Family):
    tester_class = Seq2SeqTester
    shape = dict(encoder_layers=2, decoder_layers=2)

    def get_config(self):
        return test_dat.get_config(**{**self.shape, "adaptive": self.adaptive})


class StockFamily(Family):
    """The control: the stock transformers classes, same sizes and inputs (scripts/transformers_common_tests_table.py
    runs them with ADAPTIVE_ZOO_COMMON_TESTS_CONTROL=1; the suite leaves them out)."""

    def __init__(self, name, config_class, fields, model_classes, tester_class=EncoderTester):
        super().__init__(name, None, model_classes, None)
        self.config_class, self.fields, self.tester_class = config_class, fields, tester_class

    def get_config(self):
        shape = {} if self.tester_class is Seq2SeqTester else self.shape
        return self.config_class(**{**self.fields, **shape})

    def config_tester_settings(self) -> dict:
        return {}


FAMILIES = [
    DeeBertFamily("DeeBERT", DeeBertModelTester(),
                  [deebert.DeeBertForSequenceClassification, deebert.DeeBertModel], "bert"),
    DeeBertFamily("DeeRoBERTa", DeeRobertaModelTester(),
                  [deebert.DeeRobertaForSequenceClassification, deebert.DeeRobertaModel], "roberta"),
    AdapLeRFamily("AdapLeR-BERT", AdapLeRModelTester(),
                  [adapler.AdapLeRBertForSequenceClassification, adapler.AdapLeRModel], "bert"),
    AdapLeRFamily("AdapLeR-RoBERTa", AdapLeRRobertaModelTester(),
                  [adapler.AdapLeRRobertaForSequenceClassification, adapler.AdapLeRRobertaModel], "roberta"),
    HashEEFamily("HashEE-BERT", HashEEBertModelTester(),
                 [hashee.HashEEBertForSequenceClassification, hashee.HashEEBertModel], "bert"),
    HashEEFamily("HashEE-RoBERTa", HashEERobertaModelTester(),
                 [hashee.HashEERobertaForSequenceClassification, hashee.HashEERobertaModel], "roberta"),
    HashEEBartFamily("HashEE-BART", HashEEBartModelTester(),
                     [hashee.HashEEBartForConditionalGeneration, hashee.HashEEBartModel], "bart"),
    DATFamily("DAT", None, [dat.DepthAdaptiveTransformer], "bart"),
]

if os.environ.get("ADAPTIVE_ZOO_COMMON_TESTS_CONTROL"):
    from tiny import tiny_bert_config, tiny_roberta_config
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        BartModel,
        BertConfig,
        BertForSequenceClassification,
        BertModel,
        RobertaConfig,
        RobertaForSequenceClassification,
        RobertaModel,
    )

    CONTROLS = [
        StockFamily("BERT", BertConfig, {**tiny_bert_config(), "num_labels": 3},
                    [BertForSequenceClassification, BertModel]),
        StockFamily("RoBERTa", RobertaConfig, {**tiny_roberta_config(), "num_labels": 3},
                    [RobertaForSequenceClassification, RobertaModel]),
        StockFamily("BART", BartConfig, {**test_dat.TINY_BART, "encoder_layers": 2, "decoder_layers": 2},
                    [BartForConditionalGeneration, BartModel], Seq2SeqTester),
    ]
else:
    CONTROLS = []

PLAIN_BACKBONES = (deebert.DeeBertModel, deebert.DeeRobertaModel, adapler.AdapLeRModel, adapler.AdapLeRRobertaModel)

# transformers decides which labels `_prepare_for_class` makes, and which classes are base models, by class name in
# its Auto mappings: the zoo's classes are registered with the Auto classes at run time instead, so during each test
# they are named in the mappings their stock counterparts are in.
STOCK_MAPPINGS = {
    "ForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "ForConditionalGeneration": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "DepthAdaptiveTransformer": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "Model": "MODEL_MAPPING_NAMES",
}


def mapping_of(model_class) -> str:
    return next(mapping for suffix, mapping in STOCK_MAPPINGS.items() if model_class.__name__.endswith(suffix))


# ---------------------------------------------------------------------------------------------------------------
# Skips: test name -> one-line reason
# ---------------------------------------------------------------------------------------------------------------

SDPA_VARIANTS = [f"test_eager_matches_sdpa_inference_{i:02d}_{dtype}_pad_{side}{mask}{kernels}"
                 for i, (dtype, side, mask, kernels) in enumerate(
                     (dtype, side, mask, kernels) for dtype in ("fp16", "fp32", "bf16") for side in ("left", "right")
                     for mask in ("", "_no_attn_mask") for kernels in ("_sdpa_kernels", ""))]
HALF_PRECISION = [name for name in SDPA_VARIANTS if "_fp16_" in name or "_bf16_" in name] + [
    "test_eager_matches_batched_and_grouped_inference_0_fp16", "test_eager_matches_batched_and_grouped_inference_2_bf16"]
PAD_LEFT = [name for name in SDPA_VARIANTS if "_pad_left" in name and "no_attn_mask" not in name]
SDPA_OUTPUT_ATTENTIONS = "test_eager_matches_sdpa_inference_24_fp32_pad_left_output_attentions"

DEE, DEE_ROBERTA = "DeeBertForSequenceClassification", "DeeRobertaForSequenceClassification"
ADAPLER, ADAPLER_ROBERTA = "AdapLeRBertForSequenceClassification", "AdapLeRRobertaForSequenceClassification"
HASHEE_CLASSIFIERS = ("HashEEBertForSequenceClassification", "HashEERobertaForSequenceClassification")
HASHEE_BASES = ("HashEEBertModel", "HashEERobertaModel")
HASHEE_BART = ("HashEEBartForConditionalGeneration", "HashEEBartModel")
DAT = ("DepthAdaptiveTransformer",)
ALL = ("*",)
OFF, ADAPTIVE, BOTH = ("off",), ("adaptive",), ("off", "adaptive")

# (reason, exact test names, classes, modes): every skip of a zoo class, explicit
SKIPS: list[tuple[str, list[str], tuple[str, ...], tuple[str, ...]]] = [
    # -- for time (the suite's budget on 2 cores), as the suite's other slow cases
    ("for time: the fp16/bf16 eager-vs-sdpa variants (18 per class, half this module's time); the fp32 variants run, "
     "and the zoo's attention is transformers' own BERT/BART attention", HALF_PRECISION, ALL, BOTH),
    # -- refusals in the README's "Standard switches" table
    ("refusal (README Standard switches, attn_implementation): an implementation other than eager/sdpa is refused "
     "with the zoo's own message, not transformers' 'is not supported' text the test matches",
     ["test_can_set_attention_dynamically"], ALL, BOTH),
    ("refusal (README Standard switches, output_attentions): attention weights need eager attention; the test asks "
     "for them under sdpa", ["test_capture_outputs_decorator", "test_model_outputs_equivalence",
                             SDPA_OUTPUT_ATTENTIONS], (DEE, DEE_ROBERTA, ADAPLER, ADAPLER_ROBERTA), OFF),
    ("refusal (README Standard switches, output_attentions): refused while adaptive (rows or tokens that left have "
     "no attention weights at later layers)",
     ["test_attention_outputs", "test_capture_outputs_decorator", "test_model_outputs_equivalence",
      SDPA_OUTPUT_ATTENTIONS], (DEE, DEE_ROBERTA, ADAPLER, ADAPLER_ROBERTA), ADAPTIVE),
    ("refusal (README Standard switches, output_hidden_states): a list of layers (transformers' layer selection) is "
     "refused; True/False work", ["test_can_capture_specific_layers_hidden_states"],
     (DEE, DEE_ROBERTA, ADAPLER, ADAPLER_ROBERTA), BOTH),
    ("refusal (README Standard switches, output_hidden_states and output_attentions): DAT refuses both",
     ["test_attention_outputs", "test_batching_equivalence", "test_can_capture_specific_layers_hidden_states",
      "test_capture_outputs_decorator", "test_hidden_states_output", "test_model_outputs_equivalence",
      "test_retain_grad_hidden_states_attentions", SDPA_OUTPUT_ATTENTIONS,
      *(name for name in SDPA_VARIANTS if name not in HALF_PRECISION)], DAT, BOTH),
    ("refusal (README Standard switches, AdapLeR): AdapLeR always keeps the first token, so it refuses left padding",
     [name for name in PAD_LEFT if name not in HALF_PRECISION], (ADAPLER, ADAPLER_ROBERTA), ADAPTIVE),
    ("refusal (README Fine-tuning, AdapLeR): an adaptive training step needs per-token saliencies (the paper's phase "
     "2), which the test's loop does not pass", ["test_enable_input_require_grads_with_gradient_checkpointing",
                                                "test_problem_types", "test_training", "test_training_gradient_checkpointing",
                                                "test_training_gradient_checkpointing_use_reentrant_false",
                                                "test_training_gradient_checkpointing_use_reentrant_true"],
     (ADAPLER, ADAPLER_ROBERTA), ADAPTIVE),
    # -- assumptions of the common tests that do not hold
    ("does not apply: DeeBERT's off-ramp heads are sized by num_labels too, so they are re-initialised with the "
     "classifier; the test expects only the classifier to change", ["test_can_load_ignoring_mismatched_shapes"],
     (DEE, DEE_ROBERTA), BOTH),
    ("fails for the stock RobertaModel too whenever the test's random ids hold the padding id (0 in these tiny "
     "configs, so in some runs): RoBERTa's position ids from inputs_embeds do not skip padding",
     ["test_inputs_embeds_matches_input_ids"], ("DeeRobertaModel", "AdapLeRRobertaModel"), OFF),
    ("tests/generation/ is not in the transformers sdist: GenerationTesterMixin is a stand-in, so generate() is not "
     "run here (tests/test_hashee.py and tests/test_dat.py test it)", ["test_generation_tester_mixin_inheritance"],
     (*DAT, "HashEEBartForConditionalGeneration"), BOTH),
]

SKIPS += [
    ("refusal (README Standard switches, attn_implementation/output_attentions): attention weights need eager "
     "attention; the test asks for them under sdpa", ["test_capture_outputs_decorator", "test_model_outputs_equivalence"],
     (*HASHEE_CLASSIFIERS, *HASHEE_BASES, *HASHEE_BART), OFF),
    ("refusal (README Standard switches, output_attentions): attention weights need eager attention; the test asks "
     "for them under sdpa", [SDPA_OUTPUT_ATTENTIONS], (*HASHEE_CLASSIFIERS, *HASHEE_BASES), OFF),
    ("refusal (README Standard switches, output_attentions): HashEE returns attention weights at full depth only",
     ["test_attention_outputs", "test_capture_outputs_decorator", "test_model_outputs_equivalence",
      "test_retain_grad_hidden_states_attentions"], (*HASHEE_CLASSIFIERS, *HASHEE_BASES, *HASHEE_BART), ADAPTIVE),
    ("refusal (README Standard switches, output_attentions): HashEE returns attention weights at full depth only",
     [SDPA_OUTPUT_ATTENTIONS], (*HASHEE_CLASSIFIERS, *HASHEE_BASES), ADAPTIVE),
    ("refusal (README Standard switches, output_hidden_states): a list of layers (transformers' layer selection) is "
     "refused; True/False work", ["test_can_capture_specific_layers_hidden_states"],
     (*HASHEE_CLASSIFIERS, *HASHEE_BASES), BOTH),
    ("refusal (README Standard switches, HashEE): the exits are looked up by token id, so inputs_embeds without "
     "input_ids is refused while adaptive", ["test_inputs_embeds", "test_inputs_embeds_matches_input_ids"],
     (*HASHEE_CLASSIFIERS, *HASHEE_BASES, *HASHEE_BART), ADAPTIVE),
    ("fails for the stock RobertaModel too whenever the test's random ids hold the padding id (0 in these tiny "
     "configs, so in some runs): RoBERTa's position ids from inputs_embeds do not skip padding",
     ["test_inputs_embeds_matches_input_ids"], ("HashEERobertaModel",), OFF),
    ("refused: DeeBERT exits on a softmax's entropy and supports only single-label classification, so assigning "
     "problem_type='regression' or 'multi_label_classification' (or num_labels=1) raises ValueError on assignment",
     ["test_problem_types"], (DEE, DEE_ROBERTA), BOTH),
    ("refused: AdapLeR trains with the cross-entropy of a softmax over classes, so assigning "
     "problem_type='regression' or 'multi_label_classification' (or num_labels=1) raises ValueError on assignment",
     ["test_problem_types"], (ADAPLER, ADAPLER_ROBERTA), OFF),
    ("does not apply: a HashEE model built from a config has no hash table, and its adaptive forward refuses (a "
     "clear ValueError) until one is attached; this harness attaches one after construction, which the test's "
     "meta-device build followed by init_weights() does not reproduce", ["test_all_tensors_are_parameter_or_buffer"],
     (*HASHEE_CLASSIFIERS, *HASHEE_BASES, *HASHEE_BART), ADAPTIVE),
    ("does not apply: the test shrinks vocab_size and reloads with ignore_mismatched_sizes=True, which re-initialises "
     "the vocabulary-sized hash table to 'none attached'; the adaptive forward then refuses with a clear error (attach "
     "a table for the new vocabulary, or run with token_early_exit=False)", ["test_load_with_mismatched_shapes"],
     HASHEE_CLASSIFIERS, ADAPTIVE),
    ("does not apply: HashEE-BART's outputs carry one field more than BART's (`encoder_token_exit_layers`), which the "
     "test's count of output fields (7 != 6) does not know; the attentions themselves are checked against BART's by "
     "tests/test_switches.py", ["test_attention_outputs"], HASHEE_BART, OFF),
    ("does not apply here: this harness attaches a routing table after construction (HashEEFamily.patches), which "
     "_init_weights (an all-zero table: none attached) rightly does not reproduce",
     ["test_init_weights_can_init_buffers"], (*HASHEE_CLASSIFIERS, *HASHEE_BASES, *HASHEE_BART), BOTH),
]

DEFECTS: list[tuple[str, list[str], tuple[str, ...], tuple[str, ...]]] = [
    # Failures that are the zoo's bugs, skipped until fixed (empty: issue 38's three defects are fixed).
]

def skip_reasons(model_class, adaptive: bool) -> dict[str, str]:
    """Every common test this class and mode skips, by exact name, with its reason."""
    mode = "adaptive" if adaptive else "off"
    reasons: dict[str, str] = {}
    for reason, names, classes, modes in [*SKIPS, *DEFECTS]:
        if mode in modes and (classes == ALL or model_class.__name__ in classes):
            for name in names:
                reasons.setdefault(name, reason)
    return reasons


# ---------------------------------------------------------------------------------------------------------------
# The test classes
# ---------------------------------------------------------------------------------------------------------------


class ZooCommonTest(ModelTesterMixin):
    family: Family = None
    adaptive: bool = False

    def setUp(self):
        self.family.adaptive = self.adaptive
        self.model_tester = self.family.tester_class(self, self.family)
        # as transformers' BertModelTest: the config class and hidden_size=37, plus the mode's own settings
        # (transformers' BartModelTest passes the config class alone)
        sizes = {} if self.family.tester_class is Seq2SeqTester else {"hidden_size": 37}
        self.config_tester = ConfigTester(self, config_class=type(self.family.get_config()), **sizes,
                                          **self.family.config_tester_settings())
        model_class = self.all_model_classes[0]
        patches = self.family.patches()
        if not isinstance(self.family, StockFamily):
            patches.append(mock.patch.dict(getattr(modeling_auto, mapping_of(model_class)),
                                           {model_class.config_class.model_type: model_class.__name__}))
        for patch in patches:
            patch.start()
            self.addCleanup(patch.stop)

    def test_config(self):
        self.config_tester.run_common_tests()


def make_test_case(family: Family, model_class, adaptive: bool, module: str):
    mode = "Stock" if isinstance(family, StockFamily) else ("Adaptive" if adaptive else "Off")
    name = f"Test{model_class.__name__}{mode}"
    attributes = {"family": family, "adaptive": adaptive, "all_model_classes": (model_class,),
                  "is_encoder_decoder": family.tester_class is Seq2SeqTester, "__module__": module,
                  "__qualname__": name}
    test_case = type(name, (ZooCommonTest, unittest.TestCase), attributes)
    for test_name, reason in skip_reasons(model_class, adaptive).items():
        if not hasattr(test_case, test_name):
            raise AssertionError(f"{name}: the skip list names {test_name}, which transformers' common tests lack")
        setattr(test_case, test_name, unittest.skip(reason)(getattr(test_case, test_name)))
    return test_case


def common_test_cases(family_names: list[str], module: str) -> dict[str, type]:
    """The unittest classes of the families named `family_names` (and the stock controls, when asked for with
    ADAPTIVE_ZOO_COMMON_TESTS_CONTROL=1 and "control" is named), for the test module `module`'s globals."""
    cases = {}
    chosen = [family for family in FAMILIES if family.name in family_names]
    if "control" in family_names:
        chosen += CONTROLS
    for family in chosen:
        for model_class in family.model_classes:
            # Stock classes, and DeeBERT's and AdapLeR's base models (plain BertModel/RobertaModel backbones, whose
            # forward does not read `adaptive`: an adaptive run would repeat the off run), run once.
            plain = isinstance(family, StockFamily) or model_class in PLAIN_BACKBONES
            for adaptive in ((False,) if plain else (False, True)):
                case = make_test_case(family, model_class, adaptive, module)
                cases[case.__name__] = case
    return cases
