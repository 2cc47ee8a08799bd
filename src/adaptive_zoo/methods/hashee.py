"""HashEE (Sun et al., 2022): a hash table sends each token id to its exit layer; fine-tuned with the exits on. A
classification dataset gives HashEE-BERT, a summarization dataset HashEE-BART from a pretrained BART base (with its
own tokenizer) or warm-started from a BERT one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from transformers import AutoModelForSeq2SeqLM

from ..data import tokenize_classification, tokenize_seq2seq
from ..evaluation.classification import accuracy_of
from ..evaluation.reports import EvaluationOptions
from ..evaluation.seq2seq import evaluate_seq2seq, rouge_of
from ..hashing import HASH_TABLE_FILENAME, save_hash_table
from ..models import hashee as hashee_models
from ..training.hashee import (
    HashEETrainingArguments,
    build_hashee_bart,
    build_hashee_bert,
    finetune_classifier,
    finetune_seq2seq,
    input_embeddings_for,
    table_for,
    vanilla_bert,
)
from .base import ModelFamily, RecipeRun, register_method
from .tasks import (
    BART_BASE,
    BERT_TO_BART,
    ClassifierMethod,
    check_seq2seq_base,
    classifier_families,
    generation_arguments,
    generation_options,
    seq2seq_base,
    seq2seq_tokenizer,
)


@register_method
class HashEE(ClassifierMethod):
    name = "hashee"
    families = classifier_families(
        (hashee_models.HashEEBertConfig, hashee_models.HashEEBertForSequenceClassification,
         hashee_models.HashEEBertModel),
        (hashee_models.HashEERobertaConfig, hashee_models.HashEERobertaForSequenceClassification,
         hashee_models.HashEERobertaModel),
    ) + (ModelFamily.of(hashee_models.HashEEBartConfig, AutoModelForSeq2SeqLM,
                        hashee_models.HashEEBartForConditionalGeneration, hashee_models.HashEEBartModel),)
    settings_class = HashEETrainingArguments
    tasks = ("classification", "seq2seq")
    reports_token_exits = True
    depth_baseline_side = "encoder"  # HashEE-BART's tokens exit the encoder
    nothing_to_calibrate = "HashEE's exits are fixed by its hash table (token id -> layer), not by a tuned threshold"

    def _seq2seq(self, run: RecipeRun) -> bool:
        return run.task.task == "seq2seq"

    def accepted_base_families(self, run: RecipeRun):
        return {**BART_BASE, **BERT_TO_BART} if self._seq2seq(run) else self.base_families

    def check(self, run: RecipeRun) -> None:
        super().check(run)
        if self._seq2seq(run):
            check_seq2seq_base(run)
        elif run.settings.cross_attention_init is not None:
            raise ValueError("--cross-attention-init sets up the warm-started BART of a summarization dataset; "
                             f"{run.dataset!r} is a classification dataset (HashEE-BERT has no cross-attention).")

    def load_tokenizer(self, run: RecipeRun):
        return seq2seq_tokenizer(run) if self._seq2seq(run) else super().load_tokenizer(run)

    def build(self, run: RecipeRun):
        settings, tokenizer, train = run.settings, run.tokenizer, run.task.dataset["train"]
        if not self._seq2seq(run):
            table = table_for(settings, tokenizer, train, num_layers=run.base_config.num_hidden_layers,
                              vocab_size=run.base_config.vocab_size,
                              embeddings=input_embeddings_for(settings.hash_function, run.base_path))
            run.artifacts["table"] = table
            return build_hashee_bert(run.base_path, run.task.label_names, table, tokenizer.all_special_ids,
                                     fine_tuned=run.base_is_classifier)
        bart = self.starting_bart(run)
        table = table_for(settings, tokenizer, train, num_layers=bart.config.encoder_layers,
                          vocab_size=bart.config.vocab_size, embeddings=bart.get_input_embeddings().weight.detach())
        run.artifacts.update(table=table, warm_started_bart=bart)
        return build_hashee_bart(bart, table, tokenizer.all_special_ids)

    def starting_bart(self, run: RecipeRun):
        init = run.settings.cross_attention_init
        return seq2seq_base(run, **({} if init is None else {"cross_attention_init": init}))[0]

    def train(self, run: RecipeRun, model):
        settings, tokenizer = run.settings, run.tokenizer
        if self._seq2seq(run):
            encoded = tokenize_seq2seq(run.task.dataset, tokenizer, settings.max_length, settings.max_target_length,
                                       decoder_start_token_id=model.config.decoder_start_token_id)
            finetune = finetune_seq2seq
        else:
            encoded = tokenize_classification(run.task.dataset, tokenizer, settings.max_length)
            finetune = finetune_classifier
        run.artifacts["encoded"] = encoded
        trainer = finetune(model, tokenizer, encoded, settings, "hashee")
        if not trainer.is_world_process_zero():
            return None
        model = trainer.model
        model.config.use_cache = True  # the Trainer saves use_cache=False; generation (and users) want the cache
        return model

    def choose_operating_point(self, run: RecipeRun, model):
        run.tags += ["token-early-exit", "hash-routing"]  # nothing to tune: the table fixes every exit
        return model

    def measure(self, run: RecipeRun, model):
        settings, test = run.settings, run.task.dataset["test"]
        table = run.artifacts["table"]
        run.card.update(task_kind=run.task.task,
                        table=table.summary(test["text"], tokenizer=run.tokenizer, max_length=settings.max_length))
        run.record.update(hash_table=run.card["table"], training=settings.to_dict(),
                          max_train_samples=settings.max_train_samples, max_eval_samples=settings.max_eval_samples)
        if not self._seq2seq(run):
            report = super().measure(run, model)
            if settings.train_vanilla:
                vanilla = finetune_classifier(vanilla_bert(run.base_path, run.task.label_names), run.tokenizer,
                                              run.artifacts["encoded"], settings, "vanilla").model
                report.vanilla_finetuned_accuracy = accuracy_of(
                    vanilla, run.tokenizer, test["text"], test["label"], batch_size=settings.eval_batch_size,
                    max_length=settings.max_length)
            return report
        run.task_tag = "summarization"
        report = self.evaluate(model, run.tokenizer, test, max_length=settings.max_length,
                               options=generation_options(run))
        if settings.train_vanilla:
            vanilla = copy.deepcopy(run.artifacts["warm_started_bart"])
            vanilla = finetune_seq2seq(vanilla, run.tokenizer, run.artifacts["encoded"], settings, "vanilla").model
            vanilla.config.use_cache = True
            report.vanilla_finetuned_rouge = rouge_of(vanilla.eval(), run.tokenizer, test["text"], test["summary"],
                                                      **generation_arguments(run))
        return report

    def add_files(self, run: RecipeRun, model, folder: Path) -> None:
        save_hash_table(run.artifacts["table"], folder / HASH_TABLE_FILENAME)

    def evaluate(self, model, tokenizer, split: Any, *, max_length: int, options: EvaluationOptions):
        if not model.config.is_encoder_decoder:
            return super().evaluate(model, tokenizer, split, max_length=max_length, options=options)
        return evaluate_seq2seq(model, tokenizer, split["text"], split["summary"], max_source_length=max_length,
                               options=options)
