"""AdapLeR's training phases 1-2 pieces: checkpoint choice, saliency extraction and its storage."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from tiny import TEXTS, tiny_bert_config
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, TrainerCallback, TrainerState

from adaptive_zoo.training.adapler import (
    SALIENCY_COLUMN,
    SaliencyCollator,
    best_checkpoints,
    extract_saliency,
    load_saliency,
    save_saliency,
    token_saliency,
)


@pytest.fixture
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def tiny_classifier(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**tiny_bert_config(), num_labels=3)).eval()


def encoded_train(tokenizer) -> Dataset:
    return Dataset.from_dict({**tokenizer(TEXTS), "label": [i % 3 for i in range(len(TEXTS))]})


def test_token_saliency_is_gradient_times_input_at_the_embedding_output(tokenizer):
    model = tiny_classifier()
    batch = dict(tokenizer(TEXTS[:3], padding=True, return_tensors="pt"))
    labels = torch.tensor([0, 2, 1])
    saliency = token_saliency(model, batch, labels)
    assert all(p.grad is None for p in model.parameters()), "extraction leaves no gradients behind"

    # The same quantity computed by hand: run the network from a leaf copy of the embedding output.
    embeddings = model.bert.embeddings(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"])
    embeddings = embeddings.detach().requires_grad_(True)  # (B, T, H)
    from transformers.masking_utils import create_bidirectional_mask

    mask = create_bidirectional_mask(config=model.config, inputs_embeds=embeddings,
                                     attention_mask=batch["attention_mask"])
    hidden = embeddings
    for layer in model.bert.encoder.layer:
        hidden = layer(hidden, attention_mask=mask)
    logits = model.classifier(model.bert.pooler(hidden))
    logits.gather(1, labels.view(-1, 1)).sum().backward()
    expected = (embeddings.grad * embeddings).norm(dim=-1) * batch["attention_mask"]
    torch.testing.assert_close(saliency, expected.detach(), rtol=1e-5, atol=1e-7)
    assert (saliency[batch["attention_mask"] == 0] == 0).all()


def test_saliency_of_a_row_does_not_depend_on_its_batch(tokenizer):
    model = tiny_classifier()
    batch = dict(tokenizer(TEXTS[:4], padding=True, return_tensors="pt"))
    together = token_saliency(model, batch, torch.tensor([0, 1, 2, 0]))
    alone = token_saliency(model, dict(tokenizer(TEXTS[1:2], return_tensors="pt")), torch.tensor([1]))
    length = alone.shape[1]
    torch.testing.assert_close(together[1, :length], alone[0], rtol=1e-4, atol=1e-6)


def test_extract_saliency_averages_over_checkpoints(tokenizer, tmp_path):
    paths = []
    for seed in (0, 1):
        tiny_classifier(seed).save_pretrained(tmp_path / f"checkpoint-{seed}")
        paths.append(tmp_path / f"checkpoint-{seed}")
    data = encoded_train(tokenizer)
    single = [extract_saliency([path], data, tokenizer, batch_size=3) for path in paths]
    averaged = extract_saliency(paths, data, tokenizer, batch_size=3)
    assert [len(row) for row in averaged] == [len(ids) for ids in data["input_ids"]]
    for row in range(len(data)):
        expected = (torch.tensor(single[0][row]) + torch.tensor(single[1][row])) / 2
        torch.testing.assert_close(torch.tensor(averaged[row]), expected, rtol=1e-5, atol=1e-7)


def test_saliency_file_round_trip_and_mismatch_errors(tokenizer, tmp_path):
    data = encoded_train(tokenizer)
    saliency = [[0.5] * len(ids) for ids in data["input_ids"]]
    save_saliency(data, saliency, tmp_path / "saliency")
    loaded = load_saliency(tmp_path / "saliency", data)
    assert loaded[SALIENCY_COLUMN][2] == saliency[2]

    with pytest.raises(FileNotFoundError, match="phase 2"):
        load_saliency(tmp_path / "nothing_here", data)
    other = Dataset.from_dict({**tokenizer(list(reversed(TEXTS))), "label": data["label"]})
    with pytest.raises(ValueError, match="does not match"):
        load_saliency(tmp_path / "saliency", other)
    with pytest.raises(ValueError, match="saliency rows"):
        save_saliency(data, saliency[:-1], tmp_path / "short")
    with pytest.raises(ValueError, match="scores for"):
        save_saliency(data, [[0.5] for _ in data["input_ids"]], tmp_path / "misaligned")


def test_saliency_collator_pads_scores_with_zeros(tokenizer):
    data = encoded_train(tokenizer)
    features = [{**data[i], SALIENCY_COLUMN: [1.0] * len(data[i]["input_ids"])} for i in range(3)]
    batch = SaliencyCollator(tokenizer)(features)
    assert batch[SALIENCY_COLUMN].shape == batch["input_ids"].shape
    assert torch.equal(batch[SALIENCY_COLUMN], batch["attention_mask"].float())


def test_best_checkpoints_picks_the_top_three_on_validation(tmp_path):
    state = TrainerState()
    state.log_history = [
        {"eval_accuracy": 0.80, "step": 10}, {"loss": 1.0, "step": 10},
        {"eval_accuracy": 0.90, "step": 20}, {"eval_accuracy": 0.85, "step": 30},
        {"eval_accuracy": 0.90, "step": 40}, {"eval_accuracy": 0.70, "step": 50},
    ]
    for step in (10, 20, 30, 40, 50):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert [p.name for p in best_checkpoints(state, tmp_path)] == ["checkpoint-40", "checkpoint-20", "checkpoint-30"]
    (tmp_path / "checkpoint-30").rmdir()
    with pytest.raises(FileNotFoundError):
        best_checkpoints(state, tmp_path)


@pytest.mark.parametrize("predictor_learning_rate", [None, 1e-3])
def test_adapler_trainer_gives_contribution_predictors_their_own_learning_rate(tokenizer, tmp_path,
                                                                              predictor_learning_rate):
    from adaptive_zoo.models.adapler import AdapLeRBertForSequenceClassification, AdapLeRConfig
    from adaptive_zoo.training.adapler import AdapLeRTrainer
    from adaptive_zoo.training.common import training_arguments

    model = AdapLeRBertForSequenceClassification(AdapLeRConfig(**tiny_bert_config(), num_labels=3))
    trainer = AdapLeRTrainer(
        model=model,
        args=training_arguments(tmp_path, eval_strategy="no", save_strategy="no", learning_rate=3e-5,
                                weight_decay=0.1),
        train_dataset=encoded_train(tokenizer),
        adaptive_learning_rate=0.5,
        contribution_predictor_learning_rate=predictor_learning_rate,
    )
    optimizer = trainer.create_optimizer()
    learning_rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(learning_rate_of) == len(trainable), "every trainable parameter is in exactly one group"
    predictor_expected = 3e-5 if predictor_learning_rate is None else predictor_learning_rate
    for name, parameter in model.named_parameters():
        if name.startswith("contribution_predictors."):
            assert learning_rate_of[id(parameter)] == predictor_expected, name
        elif name in ("eta", "theta"):
            assert learning_rate_of[id(parameter)] == 0.5 and decay_of[id(parameter)] == 0.0
        else:
            assert learning_rate_of[id(parameter)] == 3e-5, name
    assert decay_of[id(model.contribution_predictors[0].dense.weight)] == 0.1
    assert decay_of[id(model.contribution_predictors[0].dense.bias)] == 0.0


def test_adapler_trainer_gives_eta_theta_their_own_group_and_runs_the_schedule(tokenizer, tmp_path):
    from adaptive_zoo.models.adapler import AdapLeRBertForSequenceClassification, AdapLeRConfig
    from adaptive_zoo.training.adapler import AdapLeRTrainer
    from adaptive_zoo.training.common import training_arguments

    torch.manual_seed(0)
    config = AdapLeRConfig(**tiny_bert_config(), num_labels=3, lambda_init=10.0, lambda_growth=3.0, eta=[0.9] * 4)
    model = AdapLeRBertForSequenceClassification(config).train()
    data = encoded_train(tokenizer)
    data = data.add_column(SALIENCY_COLUMN, [[1.0] * len(ids) for ids in data["input_ids"]])
    lambdas = []

    class RecordLambda(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            lambdas.append((int(state.epoch or 0), model.soft_removal_lambda))

    trainer = AdapLeRTrainer(
        model=model,
        args=training_arguments(tmp_path, num_train_epochs=2, eval_strategy="no", save_strategy="no",
                                per_device_train_batch_size=4, learning_rate=1e-3),
        train_dataset=data,
        data_collator=SaliencyCollator(tokenizer),
        adaptive_learning_rate=0.5,
        callbacks=[RecordLambda()],
    )
    eta_before = model.eta.detach().clone()
    trainer.train()
    groups = trainer.optimizer.param_groups
    adaptive_group = [g for g in groups if any(p is model.eta for p in g["params"])]
    assert len(adaptive_group) == 1 and adaptive_group[0]["weight_decay"] == 0.0
    assert {id(p) for p in adaptive_group[0]["params"]} == {id(model.eta), id(model.theta)}
    assert not torch.equal(eta_before, model.eta.detach()), "eta is trained"
    assert ((model.eta > 0) & (model.eta <= 1)).all(), "eta stays in (0, 1]"
    assert {epoch: lam for epoch, lam in lambdas} == {0: 10.0, 1: 30.0}  # lambda_init * growth ** epoch
