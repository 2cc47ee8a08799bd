"""DeeBERT: the shared model checks (through the mixin) and what is DeeBERT's own."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from huggingface_hub.errors import StrictDataclassError
from mixins import AdaptiveModelTesterMixin, config_set, vanilla_from_config
from tiny import TEXTS, save_tiny_roberta, tiny_bert_config, tiny_roberta_config
from transformers import DataCollatorWithPadding, set_seed

from adaptive_zoo.models.deebert import (
    DeeBertConfig,
    DeeBertForSequenceClassification,
    DeeRobertaConfig,
    DeeRobertaForSequenceClassification,
    prediction_entropy,
)
from adaptive_zoo.training.common import training_arguments
from adaptive_zoo.training.deebert import DeeBertTrainingArguments, OffRampTrainer, build_deebert, train_deebert


def threshold_in_widest_gap(entropies: torch.Tensor) -> float:
    """A threshold far from every observed entropy (so float noise cannot flip a decision), near the median."""
    values = entropies.flatten().sort().values
    gaps = values[1:] - values[:-1]
    middle = slice(len(values) // 4, 3 * len(values) // 4)
    index = int(gaps[middle].argmax()) + middle.start
    return float((values[index] + values[index + 1]) / 2)


def full_depth(model):
    """The method's own off setting, entropy_threshold=None."""
    return config_set(model, entropy_threshold=None)



class DeeBertModelTester:
    model_class = DeeBertForSequenceClassification
    auto_class = "AutoModelForSequenceClassification"
    hub_code_files = ("configuration_deebert.py", "modeling_deebert.py")
    texts = TEXTS
    invalid_configs = [
        dict(entropy_threshold=-0.1),
        dict(off_ramp_dropout=1.5),
        dict(num_labels=1),
        dict(problem_type="multi_label_classification"),
        dict(is_decoder=True),
        dict(off_ramp_pooling="max"),
    ]

    def get_config(self, **overrides):
        # Mean-pooled off-ramps: with random weights the early [CLS] state is nearly input-independent.
        return DeeBertConfig(**tiny_bert_config(), **{"num_labels": 3, "off_ramp_pooling": "mean", **overrides})

    def create_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        model = DeeBertForSequenceClassification(self.get_config(**overrides))
        with torch.no_grad():  # random tiny off-ramps are near-uniform; sharpen them so entropies spread out
            for ramp in model.off_ramps:
                ramp.classifier.weight.mul_(20)
        return model.eval()

    vanilla_model = staticmethod(vanilla_from_config)
    full_depth = staticmethod(full_depth)

    def make_adaptive(self, model, inputs):
        with torch.inference_mode(), full_depth(model):
            ramp_logits = model(**inputs, output_ramp_logits=True).ramp_logits  # (B, L, C)
        # Between first-off-ramp entropies: some rows exit after layer 1, the others go deeper.
        model.config.entropy_threshold = threshold_in_widest_gap(prediction_entropy(ramp_logits[:, 0]))

    @staticmethod
    def exit_signature(outputs):
        return outputs.exit_layers.tolist()

    def train_features(self, tokenizer):
        encoded = tokenizer(list(self.texts) * 2)
        return Dataset.from_dict({**encoded, "labels": [i % 3 for i in range(2 * len(self.texts))]})


class TestDeeBert(AdaptiveModelTesterMixin):
    tester = DeeBertModelTester()


class DeeRobertaModelTester(DeeBertModelTester):
    """DeeBERT-RoBERTa: the same checks against RobertaForSequenceClassification."""

    model_class = DeeRobertaForSequenceClassification

    def get_config(self, **overrides):
        return DeeRobertaConfig(**tiny_roberta_config(), **{"num_labels": 3, "off_ramp_pooling": "mean", **overrides})

    def create_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        model = DeeRobertaForSequenceClassification(self.get_config(**overrides))
        with torch.no_grad():
            for ramp in model.off_ramps:
                ramp.classifier.weight.mul_(20)
        return model.eval()


class TestDeeRoberta(AdaptiveModelTesterMixin):
    tester = DeeRobertaModelTester()


# -- DeeBERT's own behaviour --------------------------------------------------------------------------------


def test_prediction_entropy_is_natural_log_entropy():
    uniform = torch.zeros(2, 5)
    assert torch.allclose(prediction_entropy(uniform), torch.full((2,), math.log(5)))
    assert prediction_entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() < 1e-6
    probs = torch.tensor([0.7, 0.2, 0.1])
    expected = -(probs * probs.log()).sum()
    assert torch.allclose(prediction_entropy(probs.log()[None]), expected[None])


def test_never_exit_is_explicit_and_runs_every_layer():
    model = DeeBertModelTester().create_model()
    assert model.config.entropy_threshold is None
    outputs = model(input_ids=torch.randint(5, 99, (4, 6)))
    assert outputs.exit_layers.tolist() == [4, 4, 4, 4]


def test_threshold_above_max_entropy_exits_everything_at_layer_one():
    model = DeeBertModelTester().create_model(entropy_threshold=math.log(3) + 0.01)
    outputs = model(input_ids=torch.randint(5, 99, (4, 6)), output_ramp_logits=True)
    assert outputs.exit_layers.tolist() == [1, 1, 1, 1]
    assert torch.isnan(outputs.ramp_logits[:, 1:]).all(), "layers after the exit are not computed"
    torch.testing.assert_close(outputs.logits, outputs.ramp_logits[:, 0])


def test_exited_rows_leave_the_batch(tiny_tokenizer_dir):
    """A row that exits after layer 1 is absent from layer 2's input: deeper layers see fewer rows."""
    tester = DeeBertModelTester()
    model = tester.create_model()
    from transformers import AutoTokenizer

    inputs = dict(AutoTokenizer.from_pretrained(tiny_tokenizer_dir)(TEXTS, padding=True, return_tensors="pt"))
    tester.make_adaptive(model, inputs)
    rows_seen = []
    hooks = [layer.register_forward_hook(lambda module, args, output: rows_seen.append(output.shape[0]))
             for layer in model.bert.encoder.layer]
    with torch.inference_mode():
        exit_layers = model(**inputs).exit_layers
    for hook in hooks:
        hook.remove()
    expected = [int((exit_layers >= layer).sum()) for layer in range(1, len(rows_seen) + 1)]
    assert rows_seen == expected
    assert rows_seen[0] == len(TEXTS) and min(rows_seen) < len(TEXTS)


def test_ramp_logits_are_nan_past_each_rows_exit(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tester = DeeBertModelTester()
    model = tester.create_model()
    inputs = dict(AutoTokenizer.from_pretrained(tiny_tokenizer_dir)(TEXTS, padding=True, return_tensors="pt"))
    tester.make_adaptive(model, inputs)
    outputs = model(**inputs, output_ramp_logits=True)
    for row, exit_layer in enumerate(outputs.exit_layers.tolist()):
        assert not torch.isnan(outputs.ramp_logits[row, :exit_layer]).any()
        assert torch.isnan(outputs.ramp_logits[row, exit_layer:]).all()
        torch.testing.assert_close(outputs.logits[row], outputs.ramp_logits[row, exit_layer - 1])


def test_config_assignment_is_validated_too():
    config = DeeBertModelTester().get_config()
    with pytest.raises(StrictDataclassError, match="entropy_threshold"):
        config.entropy_threshold = -1.0
    config.entropy_threshold = 0.25
    assert config.entropy_threshold == 0.25


def test_weights_share_names_with_bert_for_sequence_classification():
    model = DeeBertModelTester().create_model()
    vanilla = vanilla_from_config(model)
    assert set(vanilla.state_dict()) <= set(model.state_dict())
    assert {k for k in model.state_dict() if k not in vanilla.state_dict()} == {
        k for k in model.state_dict() if k.startswith("off_ramps.")
    }


def test_off_ramp_poolers_start_from_the_pretrained_pooler(tiny_bert_dir):
    model = build_deebert(str(tiny_bert_dir), ["a", "b", "c"])
    assert model.config.model_type == "deebert" and model.config.num_labels == 3
    for ramp in model.off_ramps:
        torch.testing.assert_close(ramp.pooler.dense.weight, model.bert.pooler.dense.weight)


def test_roberta_weights_share_names_with_roberta_for_sequence_classification():
    model = DeeRobertaModelTester().create_model()
    vanilla = vanilla_from_config(model)
    assert type(vanilla).__name__ == "RobertaForSequenceClassification"
    assert {k for k in model.state_dict() if k not in vanilla.state_dict()} == {
        k for k in model.state_dict() if k.startswith("off_ramps.")
    }


def test_build_from_a_roberta_checkpoint_and_from_a_fine_tuned_roberta_classifier(tmp_path):
    model = build_deebert(str(save_tiny_roberta(tmp_path / "roberta")), ["a", "b", "c"])
    assert model.config.model_type == "deeroberta" and isinstance(model, DeeRobertaForSequenceClassification)
    classifier_dir = save_tiny_roberta(tmp_path / "classifier", seed=1, label_names=["a", "b", "c"])
    model = build_deebert(str(classifier_dir), ["a", "b", "c"], fine_tuned=True)
    from transformers import RobertaForSequenceClassification

    original = RobertaForSequenceClassification.from_pretrained(classifier_dir).eval()
    model.eval().config.adaptive = False
    inputs = {"input_ids": torch.randint(5, 99, (3, 7))}
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, original(**inputs).logits, rtol=0, atol=0)
    for ramp in model.off_ramps:  # RoBERTa's head has no pooler: the off-ramps start from its dense + tanh
        torch.testing.assert_close(ramp.pooler.dense.weight, original.classifier.dense.weight)


def test_build_refuses_a_non_bert_base(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="BERT"):
        build_deebert(str(tmp_path), ["a", "b"])


def test_stage_two_trains_only_the_off_ramps(tiny_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tester = DeeBertModelTester()
    model = tester.create_model()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("off_ramps."))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = OffRampTrainer(
        model=model.train(),
        args=training_arguments(tmp_path, max_steps=2, eval_strategy="no", save_strategy="no",
                                per_device_train_batch_size=4, learning_rate=1e-2),
        train_dataset=tester.train_features(tokenizer),
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    trainer.train()
    for name, parameter in model.named_parameters():
        changed = not torch.equal(before[name], parameter)
        assert changed == name.startswith("off_ramps."), name


def test_two_stage_training_on_a_toy_task(tiny_bert_dir, tiny_csv, tmp_path):
    """Both stages run on the Trainer; stage 1 leaves off-ramps untouched, stage 2 leaves the backbone."""
    from transformers import AutoTokenizer

    from adaptive_zoo.data import load_task_data

    set_seed(0)
    task = load_task_data(str(tiny_csv), text_column="sentence", label_column="category")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = build_deebert(str(tiny_bert_dir), task.label_names, off_ramp_pooling="mean")
    ramp_before = model.off_ramps[0].classifier.weight.detach().clone()
    args = DeeBertTrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=3, off_ramp_epochs=3,
                                    learning_rate=1e-3, off_ramp_learning_rate=1e-2, max_length=32, batch_size=8)
    model, metrics = train_deebert(model, tokenizer, task.dataset, args)
    assert not torch.equal(ramp_before, model.off_ramps[0].classifier.weight)
    # A bag-of-words toy task: mean-pooled off-ramps learn it even on a random tiny backbone (3 classes).
    assert max(metrics["stage2"][f"eval_accuracy_layer_{i}"] for i in range(1, 4)) > 0.5
    assert set(metrics["stage2"]) >= {f"eval_accuracy_layer_{i}" for i in range(1, 5)}
    assert model.config.entropy_threshold is None and not model.training
