"""DeeBERT on the real bundled MiniLM and real BBC articles: weight compatibility with the stock transformers
class, batch invariance on real padded text, truncation of over-long text, and a fresh-process load."""

from __future__ import annotations

import pytest
import torch
from test_deebert import threshold_in_widest_gap
from transformers import AutoTokenizer, BertForSequenceClassification

from adaptive_zoo.backbones import resolve_base_model
from adaptive_zoo.data import load_task_data, select_first
from adaptive_zoo.evaluation.classification import full_depth
from adaptive_zoo.hub.verify import load_in_fresh_process, verify_fresh_process_load
from adaptive_zoo.models.deebert import prediction_entropy
from adaptive_zoo.training.deebert import DeeBertTrainingArguments, build_deebert, train_deebert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """MiniLM DeeBERT trained briefly (both stages) on 96 BBC articles at 64 tokens."""
    task = load_task_data("bbc_news")
    task.dataset["train"] = select_first(task.dataset["train"], 96)
    task.dataset["validation"] = select_first(task.dataset["validation"], 32)
    base = resolve_base_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = build_deebert(base, task.label_names)
    args = DeeBertTrainingArguments(output_dir=str(tmp_path_factory.mktemp("run") / "out"), num_train_epochs=1,
                                    off_ramp_epochs=1, max_length=64, batch_size=16, learning_rate=1e-4,
                                    trainer_overrides={"save_strategy": "no"})
    model, _ = train_deebert(model, tokenizer, task.dataset, args)
    return model, tokenizer, task.dataset["test"]["text"][:32]


def test_full_depth_equals_stock_bert_loading_the_same_folder(trained, tmp_path):
    model, tokenizer, texts = trained
    model.save_pretrained(tmp_path)
    stock = BertForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode(), full_depth(model):
        torch.testing.assert_close(model(**inputs).logits, stock(**inputs).logits, rtol=0, atol=1e-6)


def test_batch_invariance_on_real_articles_batch_32_vs_1(trained):
    model, tokenizer, texts = trained
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode(), full_depth(model):
        ramp_logits = model(**inputs, output_ramp_logits=True).ramp_logits
    model.config.entropy_threshold = threshold_in_widest_gap(prediction_entropy(ramp_logits[:, :-1]))
    try:
        with torch.inference_mode():
            batched = model(**inputs)
            singles = [model(**tokenizer([t], truncation=True, max_length=128, return_tensors="pt")) for t in texts]
        assert batched.exit_layers.tolist() == [s.exit_layers.item() for s in singles]
        assert batched.logits.argmax(-1).tolist() == [s.logits.argmax(-1).item() for s in singles]
        assert len(set(batched.exit_layers.tolist())) > 1
    finally:
        model.config.entropy_threshold = None


def test_over_long_text_is_truncated_not_an_error(trained):
    model, tokenizer, texts = trained
    long_text = " ".join(texts) * 5  # thousands of tokens, far beyond 512 positions
    inputs = tokenizer([long_text], truncation=True, return_tensors="pt")
    assert inputs["input_ids"].shape[1] == 512
    with torch.inference_mode():
        assert model(**inputs).logits.shape == (1, 5)


def test_saved_folder_loads_in_a_fresh_process(trained, tmp_path):
    model, tokenizer, texts = trained
    model.config.entropy_threshold = 0.5
    try:
        model.save_pretrained(tmp_path)
        tokenizer.save_pretrained(tmp_path)
        check = verify_fresh_process_load(model, tokenizer, tmp_path, texts[:4])
        assert check["same_exit_layers"]
        backbone = load_in_fresh_process(tmp_path, texts[:2], auto_class="AutoModel")
        assert backbone["class"].endswith("modeling_deebert.DeeBertModel")
    finally:
        model.config.entropy_threshold = None
