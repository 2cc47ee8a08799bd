"""Tiny assets for unit tests: a 99-token WordPiece vocabulary, texts over it, a tokenizer, a tiny BERT; a tiny BART
with a byte-level BPE tokenizer trained here on the same words."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    PreTrainedTokenizerFast,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]  # 99 tokens

# Eight texts of different lengths, so a batch of them is padded.
TEXTS = [" ".join(f"w{(7 * i + 3 * j) % 94}" for j in range(3 + 2 * i)) for i in range(8)]


def tiny_bert_config(**overrides) -> dict:
    return dict(vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=64, **overrides)


def tiny_roberta_config(**overrides) -> dict:
    """The tiny BERT's shape as a RoBERTa: the WordPiece tokenizer's [PAD] (id 0) is the padding index, so positions
    start at 1 and 65 rows give the tokenizer's 64 tokens; one token type, as RoBERTa has."""
    return {**tiny_bert_config(), "max_position_embeddings": 65, "pad_token_id": 0, "bos_token_id": 2,
            "eos_token_id": 3, "type_vocab_size": 1, **overrides}


def save_tiny_roberta(folder: Path, seed: int = 0, num_labels: int | None = None, label_names=None) -> Path:
    """A randomly initialised tiny RoBERTa (a RobertaModel, or with `label_names` a RobertaForSequenceClassification)
    with the tiny WordPiece tokenizer: stands in for a pretrained (or fine-tuned) RoBERTa."""
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaModel

    torch.manual_seed(seed)
    if label_names is None:
        RobertaModel(RobertaConfig(**tiny_roberta_config())).save_pretrained(folder)
    else:
        config = RobertaConfig(**tiny_roberta_config(), num_labels=len(label_names),
                               id2label=dict(enumerate(label_names)),
                               label2id={name: i for i, name in enumerate(label_names)})
        RobertaForSequenceClassification(config).save_pretrained(folder)
    save_tiny_tokenizer(folder)
    return folder


def save_tiny_tokenizer(folder: Path) -> BertTokenizerFast:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab), model_max_length=64)
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny BERT with its tokenizer: stands in for a pretrained base model."""
    torch.manual_seed(seed)
    BertForSequenceClassification(BertConfig(**tiny_bert_config())).bert.save_pretrained(folder)
    save_tiny_tokenizer(folder)
    return folder


def write_tiny_classification_csv(path: Path, num_rows: int = 90, num_classes: int = 3) -> Path:
    """A learnable toy task: the class decides which third of the vocabulary the words come from."""
    generator = torch.Generator().manual_seed(0)
    names = ["alpha", "beta", "gamma", "delta"][:num_classes]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "category"])
        for row in range(num_rows):
            label = row % num_classes
            length = int(torch.randint(3, 12, (1,), generator=generator))
            words = torch.randint(0, 30, (length,), generator=generator) + 30 * label
            writer.writerow([" ".join(f"w{int(w)}" for w in words), names[label]])
    return path


def write_tiny_summarization_csv(path: Path, num_rows: int = 60) -> Path:
    """A learnable toy summarization task: the summary is the text's first three words."""
    generator = torch.Generator().manual_seed(0)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "summary"])
        for _ in range(num_rows):
            length = int(torch.randint(6, 20, (1,), generator=generator))
            words = [f"w{int(w)}" for w in torch.randint(5, 60, (length,), generator=generator)]
            writer.writerow([" ".join(words), " ".join(words[:3])])
    return path


def save_tiny_bpe_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with BART's special tokens (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4) and its
    `<s> text </s>` template, trained on sentences over the toy vocabulary (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    texts = [" ".join(f"w{i}" for i in range(start, start + 10)) for start in range(0, 94, 5)] + TEXTS
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                        model_max_length=64)
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_tiny_bart(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny BartForConditionalGeneration with its BPE tokenizer: stands in for a pretrained
    BART (facebook/bart-base's special-token layout: decoder_start = </s>, bos = <s>)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = save_tiny_bpe_tokenizer(folder)
    torch.manual_seed(seed)
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=3, decoder_layers=3,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
                        max_position_embeddings=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        decoder_start_token_id=2, forced_eos_token_id=2)
    BartForConditionalGeneration(config).save_pretrained(folder)
    return folder
