"""T5 backbone: presets, trained tokenizer, local save/reload, clear errors for missing weights."""
from __future__ import annotations

import pytest
import torch

from prismrec.foundation.backbone import (PRESETS, add_item_tokens, build_t5, load_backbone, save_backbone,
                                          tokenizer_fingerprint, train_tokenizer)
from foundation_parts import image_features, item_index, one_thread, tokenizer  # noqa: F401 (fixtures)


def test_presets_hold_the_t5_small_shape_and_a_small_default():
    assert PRESETS["t5-small"] == dict(d_model=512, d_ff=2048, d_kv=64, num_layers=6, num_decoder_layers=6,
                                       num_heads=8)
    assert PRESETS["small"]["d_model"] == 256 and PRESETS["small"]["num_layers"] == 4
    model = build_t5("tiny", vocab_size=90)
    assert model.config.vocab_size == 90 and model.config.decoder_start_token_id == 0
    with pytest.raises(ValueError, match="unknown T5 preset 'huge'"):
        build_t5("huge", vocab_size=10)


def test_trained_tokenizer_keeps_item_tokens_whole(tokenizer, item_index):
    item = item_index.tokens_of(5)
    ids = tokenizer.encode("".join(item), add_special_tokens=False)
    assert tokenizer.convert_ids_to_tokens(ids) == item
    assert tokenizer.convert_tokens_to_ids(["<pad>", "</s>", "<unk>", "<img>"]) == [0, 1, 2, 3]
    text = "predict the next item"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_save_and_reload_gives_the_same_model_and_tokenizer(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = build_t5("tiny", len(tokenizer), dropout=0.0).eval()
    save_backbone(model, tokenizer, tmp_path / "t5")
    save_backbone(model, tokenizer, tmp_path / "t5")  # overwriting an existing folder works
    loaded, loaded_tokenizer = load_backbone(tmp_path / "t5")
    inputs = torch.tensor([tokenizer.encode("user 3 has bought")])
    labels = torch.tensor([[5, 6, 1]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=inputs, labels=labels).logits,
                              loaded.eval()(input_ids=inputs, labels=labels).logits)
    assert tokenizer_fingerprint(loaded_tokenizer) == tokenizer_fingerprint(tokenizer)


def test_missing_weights_and_hub_names_give_clear_errors(tokenizer, tmp_path):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="missing model.safetensors or pytorch_model.bin"):
        load_backbone(folder)
    with pytest.raises(FileNotFoundError, match="'t5-small' are not a local folder.*allow_download=True"):
        load_backbone("t5-small")


def test_item_tokens_join_a_pretrained_tokenizer(tmp_path, item_index):
    plain = train_tokenizer(["user 1 bought a guitar"], [], vocab_size=40)
    model = build_t5("tiny", len(plain))
    save_backbone(model, plain, tmp_path / "pretrained")
    model, loaded = load_backbone(tmp_path / "pretrained")
    added = add_item_tokens(loaded, model, item_index.vocabulary())
    assert added == len(item_index.vocabulary())  # <img> is in every tokenizer train_tokenizer makes
    assert model.get_input_embeddings().weight.shape[0] == len(loaded)
    assert loaded.unk_token_id not in loaded.convert_tokens_to_ids(item_index.tokens_of(0))
