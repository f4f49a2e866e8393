"""The T5 backbone and its tokenizer: presets, local loading, tokenizer training, saving.

No weights ship with PrismRec and nothing is downloaded unless asked: ``load_backbone``
reads a local folder (``config.json`` + weights + tokenizer files), and a hub name is
fetched only with ``allow_download=True``. Without a pretrained tokenizer, one is trained
on the training prompts with ``tokenizers`` (BPE) and saved beside the model.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from prismrec.foundation.tokens import IMAGE_TOKEN

#: architecture presets (data, not code): the T5-small shape and a 2-CPU-core default
PRESETS = {
    "t5-small": dict(d_model=512, d_ff=2048, d_kv=64, num_layers=6, num_decoder_layers=6, num_heads=8),
    "small": dict(d_model=256, d_ff=1024, d_kv=64, num_layers=4, num_decoder_layers=4, num_heads=4),
    "mini": dict(d_model=128, d_ff=512, d_kv=32, num_layers=2, num_decoder_layers=2, num_heads=4),
    "tiny": dict(d_model=32, d_ff=64, d_kv=8, num_layers=1, num_decoder_layers=1, num_heads=2),
}
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", IMAGE_TOKEN)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def build_t5(preset: str, vocab_size: int, *, dropout: float = 0.1):
    """A randomly initialised ``T5ForConditionalGeneration`` of a preset shape.

    Example:
        >>> model = build_t5("tiny", vocab_size=100)
        >>> model.config.d_model
        32
    """
    from transformers import T5Config, T5ForConditionalGeneration

    if preset not in PRESETS:
        raise ValueError(f"unknown T5 preset {preset!r}; choose one of {sorted(PRESETS)}")
    config = T5Config(vocab_size=vocab_size, dropout_rate=dropout, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0, feed_forward_proj="relu", **PRESETS[preset])
    return T5ForConditionalGeneration(config)


def train_tokenizer(texts, item_tokens: list[str], *, vocab_size: int = 4000):
    """A BPE tokenizer trained on ``texts``, with the special and item id tokens as whole tokens.

    Token ids: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, ``<img>`` 3, then the item tokens.

    Example:
        >>> tokenizer = train_tokenizer(["user 1 bought"], ["<a_0>"], vocab_size=60)
        >>> tokenizer.convert_tokens_to_ids(["<pad>", "<a_0>"])
        [0, 4]
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    special = list(SPECIAL_TOKENS) + list(item_tokens)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + len(special), special_tokens=special,
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=[IMAGE_TOKEN])


def add_item_tokens(tokenizer, model, item_tokens: list[str]) -> int:
    """Add the image and item tokens to a pretrained tokenizer; resize the model's embeddings."""
    added = tokenizer.add_tokens([IMAGE_TOKEN, *item_tokens], special_tokens=True)
    if added:
        model.resize_token_embeddings(len(tokenizer))
    return added


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the vocabulary: a checkpoint made with another tokenizer is refused by it."""
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda pair: pair[1])
    return hashlib.sha256(repr(vocabulary).encode()).hexdigest()[:16]


@contextmanager
def _quiet_progress():
    """No per-tensor "Loading weights"/"Writing model shards" bars from transformers."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def load_backbone(source: str | Path, *, allow_download: bool = False):
    """``(model, tokenizer)`` from a local folder, or from the hub only with ``allow_download``.

    A local folder needs ``config.json``, ``model.safetensors`` (or ``pytorch_model.bin``)
    and tokenizer files; the error names what is missing.

    Example:
        >>> model, tokenizer = load_backbone("weights/p5-small")  # doctest: +SKIP
    """
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    folder = Path(source)
    if folder.is_dir():
        missing = [] if (folder / "config.json").is_file() else ["config.json"]
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            missing.append(" or ".join(WEIGHT_FILES))
        if missing:
            raise FileNotFoundError(f"{folder}: no T5 weights here, missing {', '.join(missing)}")
        with _quiet_progress():
            model = T5ForConditionalGeneration.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return model, tokenizer
    if not allow_download:
        raise FileNotFoundError(
            f"T5 weights {str(source)!r} are not a local folder, and downloading is off. Put config.json, "
            f"model.safetensors and the tokenizer files in a folder and pass its path, or pass "
            f"allow_download=True to fetch {str(source)!r} from the Hugging Face hub")
    model = T5ForConditionalGeneration.from_pretrained(str(source))
    return model, AutoTokenizer.from_pretrained(str(source))


def save_backbone(model, tokenizer, folder: str | Path) -> Path:
    """Save weights (safetensors) and tokenizer together so that :func:`load_backbone` reads them.

    The files are written to a temporary folder that then replaces ``folder``, so a killed
    save never leaves half a model.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    with _quiet_progress():
        model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, folder)
    return folder
