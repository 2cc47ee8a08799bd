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

Optional, for models that are not sequence classifiers (e.g. seq2seq); the defaults fit a classifier:

- `make_labels(model, inputs)`: labels for `inputs` (default: one class index per row);
- `row_logits(outputs, inputs, row)`: the logits of row `row` that must not depend on the batch (default:
  `outputs.logits[row]`; a seq2seq tester drops the positions that are padding in that row);
- `data_collator(tokenizer)`: the Trainer's collator for `train_features` (default: `DataCollatorWithPadding`);
- `row_route(outputs, inputs, row)`: the routing decision of row `row` that must not depend on the batch (default:
  `exit_signature(outputs)[row]`; a seq2seq tester drops the positions that are padding in that row).
"""

from __future__ import annotations

import contextlib
import copy
import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
)

from adaptive_zoo.evaluation.measure import count_flops
from adaptive_zoo.hub.push import push_folder
from adaptive_zoo.hub.verify import load_in_fresh_process
from adaptive_zoo.training.common import training_arguments


def vanilla_from_config(model):
    """The vanilla transformers model, built from the adaptive config alone, as evaluation code builds it (no table
    of families): the config class's `vanilla_model_type` and the config's fields (less `model_type`, which
    `AutoConfig.for_model` takes as its first argument), the stock Auto class (`AutoModelForSeq2SeqLM` for an
    encoder-decoder) with the model's attention implementation, then the adaptive model's state dict, which must
    hold every weight of the vanilla model. In eval mode, on the model's device."""
    fields = model.config.to_dict()
    fields.pop("model_type")
    config = AutoConfig.for_model(model.config.vanilla_model_type, **fields)
    auto_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForSequenceClassification
    vanilla = auto_class.from_config(config, attn_implementation=model.config._attn_implementation)
    missing, _ = vanilla.load_state_dict(model.state_dict(), strict=False)
    assert not missing, f"the vanilla {type(vanilla).__name__} lacks weights of the adaptive model: {missing}"
    return vanilla.to(model.device).eval()


@contextlib.contextmanager
def config_set(model, **values):
    """Set fields of `model.config` (e.g. a method's own off value) for the duration of the block."""
    saved = {name: getattr(model.config, name) for name in values}
    for name, value in values.items():
        setattr(model.config, name, value)
    try:
        yield model
    finally:
        for name, value in saved.items():
            setattr(model.config, name, value)


def vanilla_inputs(vanilla, inputs):
    """`inputs` as the vanilla model takes them: BART has no token type ids."""
    return {name: value for name, value in inputs.items()
            if not (vanilla.config.is_encoder_decoder and name == "token_type_ids")}


class AdaptiveModelTesterMixin:
    tester = None

    # -- helpers -------------------------------------------------------------------------------------------
    @pytest.fixture
    def tokenizer(self, tiny_tokenizer_dir):
        return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)

    def batch(self, tokenizer, texts=None):
        return dict(tokenizer(list(texts or self.tester.texts), padding=True, return_tensors="pt"))

    def labels(self, model, inputs):
        make_labels = getattr(self.tester, "make_labels", None)
        if make_labels is not None:
            return make_labels(model, inputs)
        return torch.arange(len(inputs["input_ids"])) % model.config.num_labels

    def row_logits(self, outputs, inputs, row):
        row_logits = getattr(self.tester, "row_logits", None)
        return row_logits(outputs, inputs, row) if row_logits is not None else outputs.logits[row]

    def row_route(self, outputs, inputs, row):
        row_route = getattr(self.tester, "row_route", None)
        return row_route(outputs, inputs, row) if row_route is not None else self.tester.exit_signature(outputs)[row]

    def data_collator(self, tokenizer):
        data_collator = getattr(self.tester, "data_collator", None)
        return data_collator(tokenizer) if data_collator is not None else DataCollatorWithPadding(tokenizer)

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

    def test_invalid_value_assigned_to_a_built_model_is_refused_where_it_is_set_or_used(self, tokenizer):
        """The same values, assigned after construction (as `model.config.x = ...`): refused on assignment, leaving
        the config as it was, or (a field the modules were built for) at the next forward, before any compute."""
        inputs = self.batch(tokenizer)
        for overrides in self.tester.invalid_configs:
            model = self.tester.create_model()
            (name, value), = overrides.items()
            before = model.config.to_dict()
            try:
                setattr(model.config, name, value)
            except (ValueError, StrictDataclassError) as error:
                assert name in str(error) or name.replace("_", " ") in str(error)
                assert model.config.to_dict() == before, f"a refused `{name}` changed the config"
                continue
            assert name in model.fixed_config_fields, f"`{name} = {value!r}` was accepted on a built config"
            with pytest.raises(ValueError, match=rf"`config.{name}` was changed to"):
                model(**inputs)

    # -- equivalence and invariance ------------------------------------------------------------------------
    def test_full_depth_equals_vanilla_model(self, tokenizer):
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        with torch.inference_mode(), self.tester.full_depth(model):
            adaptive = model(**inputs).logits
            vanilla = self.tester.vanilla_model(model)(**inputs).logits
        torch.testing.assert_close(adaptive, vanilla, rtol=0, atol=1e-6)

    def test_over_long_input_is_a_clear_error(self, tokenizer):
        model = self.tester.create_model()
        config = model.config
        usable = config.max_position_embeddings
        if config.vanilla_model_type == "roberta":
            usable -= config.pad_token_id + 1  # RoBERTa's position ids start after the padding index
        inputs = self.batch(tokenizer, texts=[" ".join(["word"] * (usable + 8))])
        inputs = {name: value[:, : usable + 1] for name, value in inputs.items()}
        with torch.inference_mode(), pytest.raises(ValueError, match=f"{usable + 1} tokens but the model has only "
                                                                     f"{usable} positions"):
            model(**inputs)
        fits = {name: value[:, :usable] for name, value in inputs.items()}
        with torch.inference_mode():
            model(**fits)  # the longest input the model takes runs

    def test_vanilla_model_type_builds_the_vanilla_model(self, tokenizer):
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        vanilla = vanilla_from_config(model)  # every vanilla weight loads (asserted there)
        assert vanilla.config.model_type == model.config.vanilla_model_type == type(model.config).vanilla_model_type
        assert type(vanilla).__module__.startswith("transformers.models."), type(vanilla)  # the stock class
        with torch.inference_mode(), self.tester.full_depth(model):
            expected = model(**inputs).logits
            actual = vanilla(**vanilla_inputs(vanilla, inputs)).logits
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)

    def test_batch_invariance(self, tokenizer):
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        self.tester.make_adaptive(model, inputs)
        single_inputs = [self.batch(tokenizer, [text]) for text in self.tester.texts]
        with torch.inference_mode():
            batched = model(**inputs)
            singles = [model(**single_input) for single_input in single_inputs]
        batched_routes = [self.row_route(batched, inputs, row) for row in range(len(singles))]
        single_routes = [self.row_route(out, single_input, 0) for out, single_input in zip(singles, single_inputs)]
        assert len({str(route) for route in single_routes}) > 1, "make_adaptive must route rows differently"
        for row, (single, single_input) in enumerate(zip(singles, single_inputs)):
            batched_logits = self.row_logits(batched, inputs, row)
            single_logits = self.row_logits(single, single_input, 0)
            assert batched_logits.argmax() == single_logits.argmax()
            torch.testing.assert_close(batched_logits, single_logits, rtol=1e-4, atol=1e-5)
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
        labels = self.labels(model, inputs)
        outputs = model(**inputs, labels=labels)
        assert outputs.loss is not None and torch.isfinite(outputs.loss)
        with pytest.raises(ValueError):
            model(**inputs, labels=labels[:-1])

    # -- the common off switch: `adaptive=False` ----------------------------------------------------------------
    def test_adaptive_must_be_a_bool(self):
        assert self.tester.get_config().adaptive is True
        for value in ("no", 0, 1, None):
            # `@strict` refuses it at construction (and on assignment), as every invalid field
            with pytest.raises((ValueError, StrictDataclassError), match="adaptive"):
                self.tester.get_config(adaptive=value)
        config = self.tester.get_config()
        with pytest.raises((ValueError, StrictDataclassError), match="adaptive"):
            config.adaptive = "off"

    def adaptive_off(self, model, switch, folder):
        """The model with `adaptive=False`, set on its config or given to `from_pretrained`."""
        if switch == "config field":
            model.config.adaptive = False
            return model
        model.save_pretrained(folder)
        loaded = type(model).from_pretrained(folder, adaptive=False).eval()
        assert loaded.config.adaptive is False
        return loaded

    @pytest.mark.parametrize("switch", ["config field", "from_pretrained argument"])
    def test_adaptive_false_computes_the_vanilla_model(self, tokenizer, tmp_path, switch):
        """`adaptive=False` wins over the method's own knobs, set here so that rows take cheaper paths: the model
        computes what the vanilla transformers model with the same weights computes (logits, and `generate()` for
        seq2seq), exactly what the method's own off setting computes, whatever the batch."""
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        self.tester.make_adaptive(model, inputs)
        with torch.inference_mode():
            adaptive = model(**inputs)
            with self.tester.full_depth(model):  # the method's own, older off setting
                old_off = model(**inputs)
        assert self.tester.exit_signature(adaptive) != self.tester.exit_signature(old_off), "the knobs must adapt"
        vanilla = vanilla_from_config(model)
        off = self.adaptive_off(model, switch, tmp_path)
        single_inputs = [self.batch(tokenizer, [text]) for text in self.tester.texts]
        with torch.inference_mode():
            outputs = off(**inputs)
            plain = vanilla(**vanilla_inputs(vanilla, inputs))
            singles = [off(**single_input) for single_input in single_inputs]
        torch.testing.assert_close(outputs.logits, old_off.logits, rtol=0, atol=0)
        assert self.tester.exit_signature(outputs) == self.tester.exit_signature(old_off)
        torch.testing.assert_close(outputs.logits, plain.logits, rtol=0, atol=1e-6)
        for row, (single, single_input) in enumerate(zip(singles, single_inputs)):  # batch-invariant
            torch.testing.assert_close(self.row_logits(outputs, inputs, row), self.row_logits(single, single_input, 0),
                                       rtol=1e-4, atol=1e-5)
            assert self.row_route(outputs, inputs, row) == self.row_route(single, single_input, 0)
        if model.config.is_encoder_decoder:
            vanilla.generation_config = copy.deepcopy(off.generation_config)
            generate_inputs = vanilla_inputs(vanilla, inputs)
            for settings in (dict(num_beams=1), dict(num_beams=2)):
                with torch.inference_mode():
                    generated = off.generate(**generate_inputs, max_new_tokens=8, do_sample=False, **settings)
                    expected = vanilla.generate(**generate_inputs, max_new_tokens=8, do_sample=False, **settings)
                    off.config.adaptive = True
                    with self.tester.full_depth(off):
                        old_off_generated = off.generate(
                            **generate_inputs, max_new_tokens=8, do_sample=False, **settings
                        )
                    off.config.adaptive = False
                assert torch.equal(generated, expected), settings
                assert torch.equal(generated, old_off_generated), settings

    def test_config_saved_without_adaptive_loads_adaptive(self, tokenizer, tmp_path):
        """Folders saved before `adaptive` existed have no such field: they load with `adaptive=True` and compute
        what they computed."""
        model = self.tester.create_model()
        inputs = self.batch(tokenizer)
        self.tester.make_adaptive(model, inputs)
        model.save_pretrained(tmp_path)
        config_file = tmp_path / "config.json"
        saved = json.loads(config_file.read_text())
        saved.pop("adaptive", None)
        config_file.write_text(json.dumps(saved))
        loaded = type(model).from_pretrained(tmp_path).eval()
        assert loaded.config.adaptive is True
        with torch.inference_mode():
            expected, actual = model(**inputs), loaded(**inputs)
        torch.testing.assert_close(actual.logits, expected.logits, rtol=0, atol=0)
        assert self.tester.exit_signature(actual) == self.tester.exit_signature(expected)

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
            data_collator=self.data_collator(tokenizer),
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
            data_collator=self.data_collator(tokenizer),
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
            data_collator=self.data_collator(tokenizer),
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
