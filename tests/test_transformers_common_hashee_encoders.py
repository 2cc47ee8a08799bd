"""transformers' common model tests (ModelTesterMixin, ConfigTester) on HashEE-BERT and HashEE-RoBERTa,
adaptivity off and on; the harness, skips and reasons are in tests/transformers_common_cases.py."""

from transformers_common_cases import common_test_cases

globals().update(common_test_cases(["HashEE-BERT", "HashEE-RoBERTa"], __name__))
