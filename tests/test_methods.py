"""The method registry: what each registered method declares, its settings class's checks, and that a new method
reaches the command line, the evaluator and the Auto classes through its registration alone."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib.resources import files

import pytest
from transformers import AutoConfig, AutoModelForSequenceClassification

from adaptive_zoo.cli import build_parser
from adaptive_zoo.data import KNOWN_DATASETS
from adaptive_zoo.methods import METHODS, ModelFamily, method_for_model_type, register_method
from adaptive_zoo.methods.tasks import ClassifierMethod
from adaptive_zoo.models.deebert import DeeBertConfig, DeeBertForSequenceClassification
from adaptive_zoo.settings import RecipeSettings, positive_int, setting, setting_fields


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_declares_what_the_zoo_needs(name):
    method = METHODS[name]
    assert method.name == name and method.title and method.description
    assert (files("adaptive_zoo") / "model_cards" / f"{name}.md").is_file()
    assert method.default_dataset in KNOWN_DATASETS
    assert issubclass(method.settings_class, RecipeSettings)
    for family in method.families:
        assert AutoConfig.for_model(family.model_type).__class__ is family.config_class
        assert method_for_model_type(family.model_type) is method
        assert family.config_class.vanilla_model_type in ("bert", "roberta", "bart")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_setting_is_documented_and_checked_at_construction(name):
    settings_class = METHODS[name].settings_class
    for settings_field in setting_fields(settings_class):
        assert settings_field.metadata["help"].strip(), settings_field.name
    with pytest.raises(ValueError, match="max_length must be >= 1, got 0"):
        settings_class(output_dir="out", max_length=0)
    with pytest.raises(ValueError, match="batch_size must be an integer, got 1.5"):
        settings_class(output_dir="out", batch_size=1.5)
    assert settings_class(output_dir="out", seed="7").seed == 7  # a flag's string is converted by the check


def test_unknown_model_types_are_refused_by_name():
    with pytest.raises(ValueError, match="'t5' is not an adaptive-zoo model type"):
        method_for_model_type("t5")


def test_a_registered_method_gets_its_train_command_and_flags():
    @dataclass
    class ToySettings(RecipeSettings):
        toy_depth: int = setting(2, symbol="k", help="Layers the toy keeps.", check=positive_int)

    class ToyConfig(DeeBertConfig):
        model_type = "toy_adaptive"

    class ToyModel(DeeBertForSequenceClassification):
        config_class = ToyConfig

    class Toy(ClassifierMethod):
        name = "toy"
        title = "Toy (nobody, 2026)"
        description = "Toy: a method for this test."
        families = (ModelFamily(ToyConfig, {AutoModelForSequenceClassification: ToyModel}),)
        settings_class = ToySettings

    try:
        register_method(Toy)
        parser = build_parser().method_parsers["toy"]
        flags = {flag for action in parser._actions for flag in action.option_strings}
        assert {"--toy-depth", "--output-dir", "--max-length"} <= flags
        assert method_for_model_type("toy_adaptive") is METHODS["toy"]
        assert isinstance(AutoModelForSequenceClassification.from_config(ToyConfig(num_hidden_layers=2,
                                                                                   hidden_size=32,
                                                                                   num_attention_heads=2,
                                                                                   intermediate_size=37)), ToyModel)
        with pytest.raises(ValueError, match="already registered"):
            register_method(Toy)
    finally:
        METHODS.pop("toy", None)
    assert dataclasses.fields(ToySettings)
