"""Settings dataclasses that check themselves and describe their own command-line flags.

A field is declared once, with `setting(...)`: its default, its help text, the paper's symbol where it has one,
and the check its value must pass. `Settings.__post_init__` runs the checks, so a bad value raises at
construction whether it came from Python or from the command line; `adaptive_zoo.cli` turns the fields of a
method's settings class into the flags of `adaptive-zoo train <method>` (the check doubles as the flag's argparse
type, so a bad flag value is a one-line usage error naming the flag).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from typing import Any

Check = Callable[[Any], Any]
"""Takes a value (a string from the command line, or a Python value), returns it converted; raises
ValueError("must be ..., got ...") when it does not pass."""


def _converted(value: Any, kind: type) -> Any:
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"must be an integer, got {value!r}")
    return kind(value)


def integer(value: Any) -> int:
    return _converted(value, int)


def number(value: Any) -> float:
    return _converted(value, float)


def positive_int(value: Any) -> int:
    converted = integer(value)
    if converted < 1:
        raise ValueError(f"must be >= 1, got {value}")
    return converted


def non_negative_int(value: Any) -> int:
    converted = integer(value)
    if converted < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return converted


def positive_float(value: Any) -> float:
    converted = number(value)
    if not converted > 0:
        raise ValueError(f"must be > 0, got {value}")
    return converted


def non_negative_float(value: Any) -> float:
    converted = number(value)
    if not converted >= 0:
        raise ValueError(f"must be >= 0, got {value}")
    return converted


def fraction(value: Any) -> float:
    converted = number(value)
    if not 0 < converted <= 1:
        raise ValueError(f"must lie in (0, 1], got {value}")
    return converted


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


for _check in (integer, number, positive_int, non_negative_int, positive_float, non_negative_float, fraction):
    # Scalar number checks double as the flag's argparse type: a bad value is a one-line usage error naming the
    # flag ("--max-length must be >= 1, got 0"). Other checks run when the settings are built.
    _check.at_parse = True


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    check.choices = choices  # the command line lists them in --help
    return check


def setting(
    default: Any = MISSING,
    *,
    help: str,
    symbol: str | None = None,
    check: Check | None = None,
    metavar: str | None = None,
    many: bool = False,
    flag: bool = True,
    default_text: str | None = None,
    default_factory: Any = MISSING,
    check_at_parse: bool | None = None,
) -> Any:
    """A settings field. `symbol`: the paper's name for it (shown in --help); `check`: converts and validates one
    value (each item when `many`, a list flag); `flag=False`: settable from Python only; `default_text`: what
    --help says the default is, where `None` stands for something computed; `check_at_parse`: run the check when
    the command line is parsed (default: for scalar number checks) rather than when the settings are built."""
    if check_at_parse is None:
        check_at_parse = getattr(check, "at_parse", False) and not many
    metadata = {"help": help, "symbol": symbol, "check": check, "metavar": metavar, "many": many, "flag": flag,
                "default_text": default_text, "check_at_parse": check_at_parse}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def setting_fields(settings_class: type) -> list[dataclasses.Field]:
    """The fields declared with `setting(...)`, in declaration order."""
    return [f for f in dataclasses.fields(settings_class) if "help" in f.metadata]


@dataclass
class Settings:
    """Base of every settings dataclass: each field's check runs at construction."""

    def __post_init__(self) -> None:
        for f in setting_fields(type(self)):
            check, value = f.metadata["check"], getattr(self, f.name)
            if check is None or value is None:
                continue
            try:
                converted = tuple(check(item) for item in value) if f.metadata["many"] else check(value)
            except (TypeError, ValueError) as error:
                message = str(error)
                raise ValueError(f"{f.name} {message}" if message.startswith("must") else f"{f.name}: {message}") from None
            setattr(self, f.name, converted)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default (where it has one)."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not MISSING}


@dataclass
class RecipeSettings(Settings):
    """What every `adaptive-zoo train <method>` run takes: data, output, base model and the fine-tuning basics.
    Each method's settings class adds its own fields (and may redeclare these with its own default and help)."""

    output_dir: str = setting(help="The Hub-ready folder to write (replaced atomically when the run succeeds). "
                              "Trainer checkpoints go to OUTPUT_DIR-training beside it.", metavar="DIR", check=text)
    dataset: str | None = setting(None, help="A bundled dataset ({datasets}), a local CSV/JSON/Parquet file, or a Hub "
                                  "dataset id.", metavar="NAME_OR_FILE", default_text="{default_dataset}")
    text_column: str | None = setting(None, help="Text column of a local file.", default_text="text")
    label_column: str | None = setting(None, help="Label (classification) or summary (summarization) column of a "
                                       "local file.", default_text="label, or summary")
    base_model: str = setting("minilm", help="'minilm' (sentence-transformers/all-MiniLM-L6-v2, bundled), a local "
                              "BERT folder, or a Hub repo id.", metavar="NAME_OR_DIR", check=text)
    max_train_samples: int | None = setting(None, help="Use only the first N training examples.", metavar="N",
                                            check=positive_int, default_text="all")
    max_eval_samples: int | None = setting(None, help="Use only the first N validation and test examples, for "
                                           "tuning and measurement.", metavar="N", check=positive_int,
                                           default_text="all")
    num_train_epochs: float = setting(3.0, help="Fine-tuning epochs.", metavar="E", check=positive_float)
    learning_rate: float = setting(5e-5, help="Fine-tuning learning rate.", metavar="LR", check=positive_float)
    max_length: int = setting(128, help="Input tokens: longer texts are truncated. Saved as the tokenizer's "
                              "model_max_length, so pipelines truncate to it too.", metavar="L", check=positive_int)
    batch_size: int = setting(16, help="Training batch size per device.", metavar="B", check=positive_int)
    seed: int = setting(42, help="Seed of the data split, the new weights and training.", check=integer)
    keep_checkpoints: bool = setting(False, help="Keep the Trainer checkpoints in OUTPUT_DIR-training after a "
                                     "successful run; without it, that folder is removed.")
    eval_batch_size: int = setting(32, help="Batch size of validation tuning and test measurement.",
                                   check=positive_int, flag=False)
    wallclock_repeats: int = setting(5, help="Interleaved timing repetitions on test.", check=positive_int,
                                     flag=False)
    verify_load: bool = setting(True, help="Check that the written folder loads in a fresh process with "
                                "trust_remote_code and gives the same outputs.", flag=False)
    trainer_overrides: dict = field(default_factory=dict)
    """Extra `TrainingArguments` fields for every Trainer the run creates (Python only)."""
