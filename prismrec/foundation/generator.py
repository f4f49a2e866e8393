"""The T5 foundation network trained to write explanations (review summaries) for (user, item).

Prompts come from the ``explanation`` templates (held-out ones are never trained on);
items enter as random id tokens, users as their raw id in the text, as in P5.

Example:
    >>> generator = ExplanationGenerator(preset="mini", epochs=5).fit(split.train)  # doctest: +SKIP
    >>> generator.generate(["A2IBPI20UZIR0U"], ["1384719342"])  # doctest: +SKIP
    ['works great']
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prismrec.foundation.prompts import plain_text, render, template_named, templates


class ExplanationGenerator:
    """Train on review rows ``user, item, summary``; generate summaries for new pairs."""

    def __init__(self, *, preset: str = "mini", epochs: int = 5, batch_size: int = 32, learning_rate: float = 1e-3,
                 tokenizer_vocab: int = 4000, max_target_tokens: int = 16, num_beams: int = 4, tuning: str = "full",
                 dropout: float = 0.1, id_base: int = 32, seed: int = 0) -> None:
        self.params = dict(preset=preset, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           tokenizer_vocab=tokenizer_vocab, max_target_tokens=max_target_tokens, num_beams=num_beams,
                           tuning=tuning, dropout=dropout, id_base=id_base, seed=seed)

    def fit(self, train: pd.DataFrame, *, progress: bool = False) -> "ExplanationGenerator":
        from prismrec.foundation.adapters import TuningConfig, optimiser_parameters, prepare_tuning
        from prismrec.foundation.backbone import build_t5, train_tokenizer
        from prismrec.foundation.item_ids import random_ids
        from prismrec.foundation.model import FoundationModel

        p = self.params
        torch.manual_seed(p["seed"])
        self.users_ = sorted(set(map(str, train["user"])))
        self.items_ = sorted(set(map(str, train["item"])))
        index = random_ids(len(self.items_), base=p["id_base"], seed=p["seed"])
        texts = [plain_text(render(t.source, user=u, item=0)) for t in templates("explanation", held_out=None)
                 for u in self.users_[:2000]] + [str(s) for s in train["summary"]]
        tokenizer = train_tokenizer(texts, index.vocabulary(), vocab_size=p["tokenizer_vocab"])
        network = FoundationModel(build_t5(p["preset"], len(tokenizer), dropout=p["dropout"]), n_image_tokens=0)
        self.tuning_report_ = prepare_tuning(network, TuningConfig(p["tuning"]),
                                             tokenizer.convert_tokens_to_ids(index.vocabulary()))
        self._attach(network, tokenizer, index)
        optimizer = torch.optim.Adam(optimiser_parameters(network), lr=p["learning_rate"])
        rng = np.random.default_rng(p["seed"])
        users, items, summaries = self._rows(train)
        self.loss_history_ = []
        for epoch in range(p["epochs"]):
            network.train()
            order, total = rng.permutation(len(users)), 0.0
            for start in range(0, len(order), p["batch_size"]):
                rows = order[start:start + p["batch_size"]]
                batch = self._batch(users[rows], items[rows], [summaries[r] for r in rows], rng)
                optimizer.zero_grad()
                loss = network.loss(batch)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
            self.loss_history_.append(total / len(order))
            if progress:
                print(f"ExplanationGenerator epoch {epoch + 1}/{p['epochs']}: loss={self.loss_history_[-1]:.4f}",
                      flush=True)
        network.eval()
        return self

    def _attach(self, network, tokenizer, index) -> None:
        from prismrec.foundation.tokens import PromptEncoder

        self._network, self._tokenizer, self._index = network, tokenizer, index
        self._encoder = PromptEncoder(tokenizer, index, has_image=None, max_length=64)
        self._user_set, self._item_position = set(self.users_), {item: k for k, item in enumerate(self.items_)}

    def _rows(self, frame: pd.DataFrame):
        users = np.asarray(frame["user"].astype(str))
        items = self.item_positions(frame["item"].astype(str))
        return users, items, [str(s) for s in frame["summary"]]

    def item_positions(self, items) -> np.ndarray:
        """Index of each raw item id; an unknown one raises ``KeyError`` naming it."""
        unknown = [i for i in items if i not in self._item_position]
        if unknown:
            raise KeyError(f"unknown item {unknown[0]!r}: it has no training review ({len(unknown)} unknown items)")
        return np.array([self._item_position[i] for i in items], dtype=np.int64)

    def _batch(self, users, items, summaries, rng):
        options = templates("explanation")
        sources = []
        for user, item in zip(users, items):
            template = options[int(rng.integers(len(options)))]
            sources.append(self._encoder.source(render(template.source, user=user, item=int(item))))
        targets = [self._encoder.text_target(s, self.params["max_target_tokens"]) for s in summaries]
        return self._encoder.collate(sources, targets)

    @torch.no_grad()
    def generate(self, users, items, *, template: str = "explanation-1", batch_size: int = 64) -> list[str]:
        """A summary for each ``(user, item)`` pair (raw ids); unknown ids raise ``KeyError``."""
        from prismrec.foundation.decoding import generate

        users = [str(u) for u in users]
        unknown = [u for u in users if u not in self._user_set]
        if unknown:
            raise KeyError(f"unknown user {unknown[0]!r}: it has no training review ({len(unknown)} unknown users)")
        positions = self.item_positions([str(i) for i in items])
        text = template_named(template).source
        out = []
        for start in range(0, len(users), batch_size):
            sources = [self._encoder.source(render(text, user=u, item=int(i)))
                       for u, i in zip(users[start:start + batch_size], positions[start:start + batch_size])]
            sequences = generate(self._network, self._encoder.collate(sources), num_beams=self.params["num_beams"],
                                 max_new_tokens=self.params["max_target_tokens"] + 1, no_repeat_ngram_size=2)
            out += [t.strip() for t in self._tokenizer.batch_decode(sequences, skip_special_tokens=True)]
        return out

    def save(self, folder: str | Path) -> Path:
        """``network.safetensors``, ``tokenizer/`` and ``generator.json`` (params, ids, vocabularies)."""
        from safetensors.torch import save_model

        from prismrec.io import atomic_path, atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "network.safetensors") as tmp:
            save_model(self._network, str(tmp))
        self._tokenizer.save_pretrained(folder / "tokenizer")
        atomic_write_json(folder / "generator.json", {
            "params": self.params, "users": self.users_, "items": self.items_, "item_index": self._index.to_json(),
            "backbone_config": self._network.backbone.config.to_dict(), "loss_history": self.loss_history_})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ExplanationGenerator":
        from safetensors.torch import load_model
        from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

        from prismrec.foundation.adapters import TuningConfig, prepare_tuning
        from prismrec.foundation.item_ids import ItemIndex
        from prismrec.foundation.model import FoundationModel

        folder = Path(folder)
        if not (folder / "generator.json").is_file():
            raise FileNotFoundError(f"{folder}: no explanation model here (expected generator.json, "
                                    f"network.safetensors, tokenizer/)")
        meta = json.loads((folder / "generator.json").read_text())
        generator = cls(**meta["params"])
        generator.users_, generator.items_, generator.loss_history_ = meta["users"], meta["items"], meta["loss_history"]
        index = ItemIndex.from_json(meta["item_index"])
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        network = FoundationModel(T5ForConditionalGeneration(T5Config.from_dict(meta["backbone_config"])),
                                  n_image_tokens=0)
        prepare_tuning(network, TuningConfig(meta["params"]["tuning"]),
                       tokenizer.convert_tokens_to_ids(index.vocabulary()))
        load_model(network, str(folder / "network.safetensors"))
        generator._attach(network.eval(), tokenizer, index)
        return generator
