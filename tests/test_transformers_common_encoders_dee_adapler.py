"""transformers' common model tests (ModelTesterMixin, ConfigTester) on DeeBERT, DeeRoBERTa, AdapLeR-BERT and AdapLeR-RoBERTa (and the stock controls, with ADAPTIVE_ZOO_COMMON_TESTS_CONTROL=1),
adaptivity off and on; the harness, skips and reasons are in tests/transformers_common_cases.py."""

from transformers_common_cases import common_test_cases

globals().update(common_test_cases(["DeeBERT", "DeeRoBERTa", "AdapLeR-BERT", "AdapLeR-RoBERTa", "control"], __name__))
