"""transformers' common model tests (ModelTesterMixin, ConfigTester) on HashEE-BART and the Depth-Adaptive Transformer,
adaptivity off and on; the harness, skips and reasons are in tests/transformers_common_cases.py."""

from transformers_common_cases import common_test_cases

globals().update(common_test_cases(["HashEE-BART", "DAT"], __name__))
