"""The decoder-only option: LoRA on a causal LM (a tiny Llama here; SmolLM2 in the slow test)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from prismrec.foundation.backbone import train_tokenizer
from prismrec.foundation.decoder_only import PROMPT, DecoderExplainer, load_smollm2, smollm2_gguf_path
from foundation_parts import one_thread  # noqa: F401 (fixture)

REVIEWS = pd.DataFrame({"user": ["u1", "u2"] * 8, "item": ["i1", "i2"] * 8,
                        "summary": ["great tone", "cheap strings"] * 8})


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = [PROMPT.format(user=u, item=i) + " " + s for u, i, s in REVIEWS.itertuples(index=False)]
    tokenizer = train_tokenizer(texts, [], vocab_size=60)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config), tokenizer


def test_lora_trains_only_its_own_parameters_on_the_summary_tokens():
    model, tokenizer = tiny_llama()
    explainer = DecoderExplainer(model, tokenizer, lora_rank=4, learning_rate=0.01)
    trainable, total = explainer.trainable_parameters()
    assert 0 < trainable < 0.2 * total
    batch = explainer.batch(["u1"], ["i1"], ["great tone"])
    prompt_length = len(tokenizer.encode(PROMPT.format(user="u1", item="i1"), add_special_tokens=False))
    assert (batch["labels"][0, :prompt_length] == -100).all()
    assert batch["labels"][0, -1] == tokenizer.eos_token_id
    before = {n: p.detach().clone() for n, p in explainer.model.named_parameters()}
    explainer.fit(REVIEWS, epochs=3)
    changed = {n for n, p in explainer.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all("lora_" in name for name in changed)
    assert explainer.loss_history_[-1] < explainer.loss_history_[0]
    texts = explainer.generate(["u1", "u2"], ["i1", "i2"])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_the_smollm2_weights_are_found_in_the_installed_package():
    try:
        path = smollm2_gguf_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(FileNotFoundError, match="GGUF weights file not found"):
        load_smollm2(path.with_name("missing.gguf"))


@pytest.mark.slow
def test_smollm2_loads_from_gguf_and_writes_text():
    model, tokenizer = load_smollm2()
    explainer = DecoderExplainer(model, tokenizer)
    trainable, total = explainer.trainable_parameters()
    assert total > 100_000_000 and trainable / total < 0.01
    assert explainer.generate(["A2IBPI20UZIR0U"], ["1384719342"])[0]
