"""What every model of the zoo must do, written once.

A test class for a model family inherits `AdaptiveModelTesterMixin` and sets `tester` to an object with:

- `model_class`, `auto_class` (name of the transformers Auto class it registers with);
- `create_model(seed=0)`: a tiny model in eval mode; `get_config(**overrides)`;
- `vanilla_model(model)`: the plain transformers model with the same weights;
- `full_depth(model)`: a context manager switching adaptivity off ("never exit");
- `make_adaptive(model, inputs)`: set the model so that, on `inputs`, some rows take a cheaper path than
  others (the test checks that this really happens, so batch invariance is not tested vacuously);
- `exit_signature(outputs)`: the routing decision of each row, as a list (exit layers, kept tokens, ...);
- `hub_code_files`: the Python files a pushed repo must contain;
- `invalid_configs`: config overrides that must raise at construction;
- `texts` and the `tiny_tokenizer_dir` fixture: inputs of different lengths (so batches are padded);
- `train_features()`: a list of tokenized examples with labels for a Trainer step.
"""

from __future__ import annotations

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer

from adaptive_zoo.evaluation.measure import count_flops
from adaptive_zoo.hub.push import push_folder
from adaptive_zoo.hub.verify import load_in_fresh_process
from adaptive_zoo.training.common import training_arguments


class AdaptiveModelTesterMixin:
    tester = None

    # -- helpers -------------------------------------------------------------------------------------------
    @pytest.fixture
    def tokenizer(self, tiny_tokenizer_dir):
        return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)

    def batch(self, tokenizer, texts=None):
        return dict(tokenizer(list(texts or self.tester.texts), padding=True, return_tensors="pt"))

    def save(self, model, tokenizer, folder):
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    # -- config --------------------------------------------------------------------------------------------
    def test_config_rejects_invalid_values_at_construction(self):
        for overrides in self.tester.invalid_configs:
            # transformers' strict configs raise StrictDataclassError wrapping our ValueError's message
            with pytest.raises((ValueError, StrictDataclassError), match=next(iter(overrides))):
                self.tester.get_config(**overrides)

    # -- equivalence and invariance ------------------------------------------------------------------------
    def test_full_depth_equals_vanilla_model(self, tokenizer):
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        with torch.inference_mode(), self.tester.full_depth(model):
            adaptive = model(**inputs).logits
            vanilla = self.tester.vanilla_model(model)(**inputs).logits
        torch.testing.assert_close(adaptive, vanilla, rtol=0, atol=1e-6)

    def test_batch_invariance(self, tokenizer):
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        self.tester.make_adaptive(model, inputs)
        with torch.inference_mode():
            batched = model(**inputs)
            singles = [model(**self.batch(tokenizer, [text])) for text in self.tester.texts]
        batched_routes = self.tester.exit_signature(batched)
        single_routes = [self.tester.exit_signature(out)[0] for out in singles]
        assert len({str(route) for route in single_routes}) > 1, "make_adaptive must route rows differently"
        for row, single in enumerate(singles):
            assert batched.logits[row].argmax() == single.logits[0].argmax()
            torch.testing.assert_close(batched.logits[row], single.logits[0], rtol=1e-4, atol=1e-5)
            assert batched_routes[row] == single_routes[row]

    def test_adaptive_path_executes_fewer_flops(self, tokenizer):
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        self.tester.make_adaptive(model, inputs)
        adaptive_flops = count_flops(lambda: model(**inputs))
        with self.tester.full_depth(model):
            full_flops = count_flops(lambda: model(**inputs))
        assert adaptive_flops < full_flops

    def test_loss_is_returned_with_labels(self, tokenizer):
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        labels = torch.arange(len(self.tester.texts)) % model.config.num_labels
        outputs = model(**inputs, labels=labels)
        assert outputs.loss is not None and torch.isfinite(outputs.loss)
        with pytest.raises(ValueError):
            model(**inputs, labels=labels[:-1])

    # -- saving and loading --------------------------------------------------------------------------------
    def test_save_load_round_trip(self, tokenizer, tmp_path):
        import transformers

        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        self.tester.make_adaptive(model, inputs)
        self.save(model, tokenizer, tmp_path)
        loaded = getattr(transformers, self.tester.auto_class).from_pretrained(tmp_path).eval()
        assert type(loaded) is type(model)
        def fields(config):
            return {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}

        assert fields(loaded.config) == fields(model.config)
        with torch.inference_mode():
            expected, actual = model(**inputs), loaded(**inputs)
        torch.testing.assert_close(actual.logits, expected.logits, rtol=0, atol=0)
        assert self.tester.exit_signature(actual) == self.tester.exit_signature(expected)

    def test_fresh_process_trust_remote_code_load(self, tokenizer, tmp_path):
        model = self.tester.create_model()
        self.tester.make_adaptive(model, self.batch(tokenizer))
        self.save(model, tokenizer, tmp_path)
        child = load_in_fresh_process(tmp_path, self.tester.texts, auto_class=self.tester.auto_class)
        assert child["class"].startswith("transformers_modules."), child["class"]
        with torch.inference_mode():
            expected = model(**self.batch(tokenizer))
        torch.testing.assert_close(torch.tensor(child["logits"]), expected.logits, rtol=0, atol=1e-6)
        if child["exit_layers"] is not None:
            assert child["exit_layers"] == self.tester.exit_signature(expected)

    def test_trainer_step(self, tokenizer, tmp_path):
        model = self.tester.create_model()
        model.train()
        before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        trainer = Trainer(
            model=model,
            args=training_arguments(tmp_path, max_steps=2, eval_strategy="no", save_strategy="no",
                                    per_device_train_batch_size=4, learning_rate=1e-2),
            train_dataset=self.tester.train_features(tokenizer),
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        result = trainer.train()
        assert torch.isfinite(torch.tensor(result.training_loss))
        assert any(not torch.equal(before[name], p) for name, p in model.named_parameters() if name in before)

    def test_trainer_checkpoint_is_a_hub_folder(self, tokenizer, tmp_path):
        model = self.tester.create_model()
        trainer = Trainer(
            model=model,
            args=training_arguments(tmp_path, max_steps=1, eval_strategy="no", save_strategy="steps", save_steps=1,
                                    per_device_train_batch_size=4),
            train_dataset=self.tester.train_features(tokenizer),
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        trainer.train()
        checkpoint = tmp_path / "checkpoint-1"
        child = load_in_fresh_process(checkpoint, self.tester.texts[:2], auto_class=self.tester.auto_class)
        assert child["class"].startswith("transformers_modules.")

    def test_push_to_loopback_hub_and_load_back_in_fresh_process(self, tokenizer, tmp_path, loopback_hub):
        model = self.tester.create_model()
        self.tester.make_adaptive(model, self.batch(tokenizer))
        folder = self.save(model, tokenizer, tmp_path / "folder")
        repo_id = f"{loopback_hub.user}/tiny-{model.config.model_type}"
        push_folder(folder, repo_id)
        assert "config.json" in loopback_hub.files(repo_id)
        child = load_in_fresh_process(
            repo_id, self.tester.texts, auto_class=self.tester.auto_class,
            env=loopback_hub.subprocess_env(hf_home=tmp_path / "empty_cache"),
        )
        with torch.inference_mode():
            expected = model(**self.batch(tokenizer))
        torch.testing.assert_close(torch.tensor(child["logits"]), expected.logits, rtol=0, atol=1e-6)

    def test_trainer_push_to_hub_then_load_by_repo_id(self, tokenizer, tmp_path, loopback_hub):
        model = self.tester.create_model()
        repo_id = f"{loopback_hub.user}/trainer-{model.config.model_type}"
        trainer = Trainer(
            model=model,
            args=training_arguments(tmp_path / "run", max_steps=1, eval_strategy="no", save_strategy="no",
                                    per_device_train_batch_size=4, push_to_hub=True, hub_model_id=repo_id),
            train_dataset=self.tester.train_features(tokenizer),
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        trainer.train()
        trainer.push_to_hub()
        assert set(self.tester.hub_code_files) <= set(loopback_hub.files(repo_id))
        child = load_in_fresh_process(
            repo_id, self.tester.texts[:3], auto_class=self.tester.auto_class,
            env=loopback_hub.subprocess_env(hf_home=tmp_path / "empty_cache"),
        )
        model.eval()
        with torch.inference_mode():
            expected = model(**self.batch(tokenizer, self.tester.texts[:3])).logits
        torch.testing.assert_close(torch.tensor(child["logits"]), expected, rtol=0, atol=1e-6)

    def test_model_push_to_hub(self, tokenizer, loopback_hub):
        model = self.tester.create_model()
        repo_id = f"{loopback_hub.user}/pushed-{model.config.model_type}"
        model.push_to_hub(repo_id)
        files = loopback_hub.files(repo_id)
        for name in ("config.json", "model.safetensors", *self.tester.hub_code_files):
            assert name in files, f"{name} missing from the pushed repo: {sorted(files)}"
