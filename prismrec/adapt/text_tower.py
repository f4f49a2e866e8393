"""A BERT-style text tower split in two: frozen lower layers (cached) and a trainable top.

Fine-tuning or end-to-end training of a whole MiniLM on 2 CPU cores is far too slow, but
only the top layer(s) carry adapters. So the tower is cut at layer ``k``: the embeddings
and layers ``0..k-1`` run once per item, under ``no_grad``, and their hidden states are
cached in the feature store (:class:`LowerLayerEncoder`, keyed by its own encoder id plus
the item's content hash); each training step runs only layers ``k..`` and the pooling.

The tower reads the folders :class:`~prismrec.encoders.text.SentenceTransformerEncoder`
reads: a sentence-transformers folder (``modules.json``: Transformer, Pooling, Normalize)
or a plain Hugging Face BERT folder (mean pooling), and the text tower of a Hugging Face
CLIP folder (``clip-text:<dir>``: causal layers, final layer norm, end-of-text pooling and
the text projection). Its output equals that encoder's (L2-normalised) while nothing is adapted.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prismrec.encoders.base import Encoder
from prismrec.encoders.text import SentenceTransformerEncoder, _load_quietly, encode_texts, offline_hub

POOLING_MODES = ("mean", "cls", "max", "last")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def is_clip_folder(folder: str | Path) -> bool:
    """True for a Hugging Face CLIP folder (``config.json`` with ``model_type: clip``)."""
    return _read_json(Path(folder) / "config.json").get("model_type") == "clip"


def read_sentence_transformer_folder(folder: str | Path) -> tuple[Path, str]:
    """``(transformer folder, pooling mode)`` of a sentence-transformers or plain HF folder.

    Example:
        >>> read_sentence_transformer_folder(minilm_path())  # doctest: +SKIP
        (PosixPath('.../model'), 'mean')
    """
    folder = Path(folder)
    modules = _read_json(folder / "modules.json") if (folder / "modules.json").is_file() else []
    transformer, pooling = folder, "mean"
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        path = folder / module.get("path", "")
        if kind == "Transformer":
            transformer = path
        elif kind == "Pooling":
            options = _read_json(path / "config.json")
            pooling = next((mode for mode in POOLING_MODES if options.get(f"pooling_mode_{mode}_tokens")
                            or options.get(f"pooling_mode_{mode}_token")), "mean")
        elif kind not in ("Normalize",):
            raise ValueError(f"{folder / 'modules.json'}: module {kind!r} is not supported by the trainable text "
                             "tower (it reads Transformer, Pooling and Normalize)")
    if not (transformer / "config.json").is_file():
        raise FileNotFoundError(f"{transformer}: no config.json of a BERT-style model")
    return transformer, pooling


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Sentence vector of token states ``[b, L, h]`` under an attention mask ``[b, L]``.

    Example:
        >>> pool(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[1.0, 1.0, 0.0]]), "mean").tolist()
        [[2.0]]
    """
    if mode == "cls":
        return hidden[:, 0]
    if mode == "last":  # CLIP's end-of-text token: the last real token of right-padded sequences
        return hidden[torch.arange(len(hidden)), (mask.sum(1).long() - 1).clamp_min(0)]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(weights == 0, -1e9).max(1).values
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


class SplitTextTower(nn.Module):
    """Embeddings + ``frozen_layers`` lower layers (frozen) and the remaining top layers.

    Example:
        >>> tower = SplitTextTower.from_folder(minilm_path(), frozen_layers=5, max_seq_length=64)  # doctest: +SKIP
        >>> hidden, mask = tower.lower(["a film about ships"])  # doctest: +SKIP
        >>> tower.top(hidden, mask).shape  # doctest: +SKIP
        torch.Size([1, 384])
    """

    def __init__(self, bert, tokenizer, *, frozen_layers: int, max_seq_length: int, pooling: str = "mean",
                 output=None) -> None:
        super().__init__()
        layers = bert.encoder.layer if hasattr(bert.encoder, "layer") else bert.encoder.layers
        if not 0 <= frozen_layers <= len(layers):
            raise ValueError(f"frozen_layers must be in [0, {len(layers)}] for this {len(layers)}-layer tower, "
                             f"got {frozen_layers}")
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        self.config, self.tokenizer = bert.config, tokenizer
        self.causal = getattr(bert.config, "model_type", "") == "clip_text_model"
        self.frozen_layers, self.max_seq_length, self.pooling = frozen_layers, max_seq_length, pooling
        self.hidden_size = int(bert.config.hidden_size)
        # the frozen part is kept out of this module's parameters: it is never trained or saved
        # ``output``: what follows the last layer (CLIP: final layer norm + text projection), frozen too
        self._frozen = [bert.embeddings.eval(), nn.ModuleList(layers[:frozen_layers]).eval(),
                        (output or nn.Identity()).eval()]
        for part in self._frozen:
            part.requires_grad_(False)
        self.top_layers = nn.ModuleList(layers[frozen_layers:])
        self.top_layers.requires_grad_(False)
        self.prompt: nn.Module | None = None  # set by prompt tuning (prismrec.adapt.adapters)

    @classmethod
    def from_folder(cls, folder: str | Path, *, frozen_layers: int, max_seq_length: int) -> "SplitTextTower":
        """Load a sentence-transformers / HF BERT folder offline (nothing is ever downloaded)."""
        from transformers import AutoModel, AutoTokenizer

        if is_clip_folder(folder):
            return cls._from_clip_folder(folder, frozen_layers=frozen_layers, max_seq_length=max_seq_length)
        transformer, pooling = read_sentence_transformer_folder(folder)
        with offline_hub():
            tokenizer = AutoTokenizer.from_pretrained(str(transformer), local_files_only=True)
            bert = _load_quietly(lambda path, device, **kw: AutoModel.from_pretrained(path, **kw).to(device),
                                 str(transformer), "cpu")
        if not hasattr(bert, "encoder") or not hasattr(bert.encoder, "layer"):
            raise ValueError(f"{transformer}: {type(bert).__name__} is not a BERT-style encoder (no encoder.layer)")
        return cls(bert.eval(), tokenizer, frozen_layers=frozen_layers, max_seq_length=max_seq_length,
                   pooling=pooling)

    @classmethod
    def _from_clip_folder(cls, folder, *, frozen_layers: int, max_seq_length: int) -> "SplitTextTower":
        from transformers import AutoTokenizer, CLIPModel

        with offline_hub():
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = _load_quietly(lambda path, device, **kw: CLIPModel.from_pretrained(path, **kw).to(device),
                                  str(folder), "cpu")
        text = model.text_model.eval()
        length = min(max_seq_length, int(text.config.max_position_embeddings))
        return cls(text, tokenizer, frozen_layers=frozen_layers, max_seq_length=length, pooling="last",
                   output=nn.Sequential(text.final_layer_norm, model.text_projection))

    @property
    def output_dim(self) -> int:
        """Width of the sentence vectors (CLIP: its projection's)."""
        projection = self._frozen[2][-1] if isinstance(self._frozen[2], nn.Sequential) else None
        return int(projection.out_features) if projection is not None else self.hidden_size

    @property
    def n_layers(self) -> int:
        return self.frozen_layers + len(self.top_layers)

    @torch.no_grad()
    def lower(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states after the frozen layers, ``[n, max_seq_length, h]``, and the mask ``[n, max_seq_length]``."""
        tokens = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.max_seq_length,
                                return_tensors="pt")
        embeddings, layers, _ = self._frozen
        types = {} if self.causal else {"token_type_ids": tokens.get("token_type_ids")}
        hidden = embeddings(input_ids=tokens["input_ids"], **types)
        mask = tokens["attention_mask"].float()
        return self._run(layers, hidden, mask), mask

    def _run(self, layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

        if len(layers) == 0:
            return hidden
        if self.causal:  # CLIP's text layers attend to earlier tokens only
            attention = create_causal_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask.long(),
                                           cache=None)
            for layer in layers:
                hidden = layer(hidden, attention, is_causal=True)
            return hidden
        attention = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask.long())
        for layer in layers:
            hidden = layer(hidden, attention)
        return hidden

    def top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised sentence vectors ``[b, h]`` from cached lower states (with gradients).

        Every row needs at least one real token (``mask.sum(1) > 0``).
        """
        length = max(int(mask.sum(1).max().item()), 1)  # padding never changes the real tokens' states
        hidden, mask = hidden[:, :length], mask[:, :length]
        n_prompt = 0
        if self.prompt is not None:
            n_prompt = self.prompt.embedding.num_embeddings
            prompts = self.prompt(torch.arange(n_prompt)).unsqueeze(0).expand(len(hidden), -1, -1)
            hidden = torch.cat([prompts, hidden], dim=1)
            mask = torch.cat([torch.ones(len(mask), n_prompt), mask], dim=1)
        hidden = self._run(self.top_layers, hidden, mask)
        return F.normalize(self._frozen[2](pool(hidden[:, n_prompt:], mask[:, n_prompt:], self.pooling)), dim=-1)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trainable tensors (adapter, LoRA, prompt or top-layer weights)."""
        return {name: value.detach().clone() for name, value in self.named_parameters() if value.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
        expected = {name for name, value in self.named_parameters() if value.requires_grad}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"{where}: adapter weights do not fit this tower; missing {missing[:5]}, "
                             f"unexpected {extra[:5]}")
        self.load_state_dict(state, strict=False)


class LowerLayerEncoder(Encoder):
    """The frozen lower part of a text tower as a (cacheable) encoder.

    Its vector per item is the flattened ``[max_seq_length, h]`` hidden states followed by
    the ``[max_seq_length]`` attention mask; :meth:`unflatten` restores both. Its id holds
    the text encoder's name, weights' hash, template, cut and length, so the cache never
    mixes towers or cuts.
    """

    modality = "text"

    def __init__(self, text_encoder: SentenceTransformerEncoder, tower: SplitTextTower) -> None:
        self.text_encoder, self.tower = text_encoder, tower
        self.name = f"{text_encoder.name}/lower{tower.frozen_layers}"
        self.dim = tower.max_seq_length * (tower.hidden_size + 1)

    def config(self) -> dict:
        return {**self.text_encoder.config(), "frozen_layers": self.tower.frozen_layers,
                "tower_max_seq_length": self.tower.max_seq_length, "pooling": self.tower.pooling}

    def weights_hash(self) -> str:
        return self.text_encoder.weights_hash()

    def contents(self, catalog) -> list:
        return self.text_encoder.contents(catalog)

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        def flat(texts):
            hidden, mask = self.tower.lower(texts)
            return torch.cat([hidden.flatten(1), mask], dim=1).numpy()
        return encode_texts(contents, self.dim, flat)

    def unflatten(self, features: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden [n, L, h], mask [n, L])`` tensors from this encoder's stored vectors."""
        length, size = self.tower.max_seq_length, self.tower.hidden_size
        tensor = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        return tensor[:, :length * size].reshape(-1, length, size), tensor[:, length * size:]
