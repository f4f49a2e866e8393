"""Fine-tuned text towers on a tiny 2-layer BERT: exact equality with the frozen encoder before
training, adapters that are the only tensors that train and are saved, resume, and new encoder ids."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import prismrec.encoders  # noqa: F401
from tiny_models import colour_catalog, one_torch_thread, tiny_bert, tiny_clip  # noqa: F401  (fixtures)  (registers the encoders)
from prismrec.adapt import AdaptationConfig, build_tower
from prismrec.adapt.text_tower import SplitTextTower
from prismrec.encoders.align_train import train_alignment
from prismrec.encoders.registry import create_encoder
from prismrec.encoders.store import FeatureStore

PREFIX = {"lora": "lora_", "adapter": "adapter_", "prompt": "prompt.", "full": "top_layers.0."}


def _align(tiny_bert, catalog, output_dir, adaptation="lora", epochs=2, **options):
    return train_alignment(catalog, text_encoder=f"text:{tiny_bert}", image_encoder="test-adapt-image",
                           text_template="{description}", head="linear", shared_dim=8, epochs=epochs, batch_size=16,
                           learning_rate=0.01, heldout_fraction=0.25, output_dir=output_dir, progress=False,
                           adaptation=adaptation, adaptation_options={"max_seq_length": 16, **options})


def test_split_tower_equals_the_sentence_transformer_until_trained(tiny_bert, colour_catalog):
    texts = colour_catalog.compose_text("{description}")[:6]
    frozen, _ = create_encoder(f"text:{tiny_bert}", template="{description}").encode_batch(texts)
    for adaptation in ("none", "lora", "adapter", "full"):  # LoRA's B and the adapter's up start at zero
        tower = build_tower(tiny_bert, AdaptationConfig(adaptation, max_seq_length=16))
        assert tower.frozen_layers == (2 if adaptation == "none" else 1)
        np.testing.assert_allclose(tower.top(*tower.lower(texts)).detach().numpy(), frozen, atol=1e-5)
    tower = build_tower(tiny_bert, AdaptationConfig("prompt", max_seq_length=16, prompt_tokens=3))
    assert not np.allclose(tower.top(*tower.lower(texts)).detach().numpy(), frozen, atol=1e-4)
    with pytest.raises(ValueError, match="trainable_layers=3, but the text tower has only 2 layers"):
        build_tower(tiny_bert, AdaptationConfig("lora", trainable_layers=3))
    with pytest.raises(ValueError, match="adaptation must be one of"):
        AdaptationConfig("lorra")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['rank'\]"):
        AdaptationConfig.from_options({"rank": 4})


def test_clip_text_tower_equals_clip_text_until_trained(tiny_clip, colour_catalog):
    texts = colour_catalog.compose_text("{description}")[:6]
    frozen, _ = create_encoder(f"clip-text:{tiny_clip}").encode_batch(texts)
    for adaptation in ("none", "lora", "adapter", "full"):
        tower = build_tower(tiny_clip, AdaptationConfig(adaptation, max_seq_length=32))
        assert (tower.causal, tower.output_dim) == (True, 16)
        np.testing.assert_allclose(tower.top(*tower.lower(texts)).detach().numpy(), frozen, atol=1e-5)
    lora = build_tower(tiny_clip, AdaptationConfig("lora", max_seq_length=32))
    assert all("_proj.lora_" in name for name in lora.trainable_state_dict())  # q_proj / v_proj


@pytest.mark.parametrize("adaptation", ["lora", "adapter", "prompt", "full"])
def test_alignment_trains_only_the_adapter_and_saves_only_it(adaptation, tiny_bert, colour_catalog, tmp_path):
    report = _align(tiny_bert, colour_catalog, tmp_path / "run", adaptation, epochs=2)
    meta = json.loads((tmp_path / "run" / "checkpoint" / "alignment.json").read_text())
    assert meta["config"]["adaptation"]["adaptation"] == adaptation
    saved = load_file(str(tmp_path / "run" / "checkpoint" / meta["text_adapter_file"]))
    assert saved and all(PREFIX[adaptation] in name for name in saved)
    untouched = build_tower(tiny_bert, AdaptationConfig(adaptation, max_seq_length=16))
    changed = [name for name, value in untouched.trainable_state_dict().items() if not torch.equal(value, saved[name])]
    assert changed, "the contrastive loss must move the text tower's trainable tensors"
    base = SplitTextTower.from_folder(tiny_bert, frozen_layers=1, max_seq_length=16)
    if adaptation != "full":  # the pretrained weights themselves never change: only the adapter is saved
        assert not any(name in saved for name in dict(base.named_parameters()))
    assert report.history[-1]["loss"] < report.history[0]["loss"]


def test_resume_one_plus_one_equals_two_straight(tiny_bert, colour_catalog, tmp_path):
    _align(tiny_bert, colour_catalog, tmp_path / "straight", epochs=2)
    _align(tiny_bert, colour_catalog, tmp_path / "resumed", epochs=1)
    _align(tiny_bert, colour_catalog, tmp_path / "resumed", epochs=2)
    states = []
    for run in ("straight", "resumed"):
        folder = tmp_path / run / "checkpoint"
        meta = json.loads((folder / "alignment.json").read_text())
        states.append({**load_file(str(folder / meta["text_adapter_file"])),
                       **load_file(str(folder / meta["heads_file"]))})
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        torch.testing.assert_close(states[0][name], states[1][name], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="differs in adaptation"):
        _align(tiny_bert, colour_catalog, tmp_path / "resumed", epochs=3, lora_rank=4)


def test_adapted_encoders_restore_the_tower_under_ids_that_hash_the_adapter(tiny_bert, colour_catalog, tmp_path,
                                                                              monkeypatch):
    _align(tiny_bert, colour_catalog, tmp_path / "run", epochs=1)
    store = tmp_path / "run" / "features"
    lower_ids = [i for i in FeatureStore(store).encoder_ids() if "/lower1" in i]
    assert len(lower_ids) == 1  # the frozen lower layer's states are cached in the feature store
    adapted = create_encoder(f"adapted-text:{tmp_path / 'run'}", feature_store=str(store))
    plain = create_encoder(f"text:{tiny_bert}", template="{description}")
    monkeypatch.setattr(SplitTextTower, "lower", lambda *a: pytest.fail("lower layers must come from the cache"))
    first = adapted.encode(colour_catalog).features
    assert adapted.id != plain.id and first.shape == (40, 32)
    assert not np.allclose(first, plain.encode(colour_catalog).features, atol=1e-4)
    aligned = create_encoder(f"align:{tmp_path / 'run'}", view="text", feature_store=str(store))
    assert aligned.text_tower.id == adapted.id
    monkeypatch.undo()
    _align(tiny_bert, colour_catalog, tmp_path / "run", epochs=2)  # one more epoch: other adapter weights
    assert create_encoder(f"adapted-text:{tmp_path / 'run'}").id != adapted.id


def test_adapted_text_needs_an_adapted_checkpoint(tiny_bert, colour_catalog, tmp_path):
    train_alignment(colour_catalog, text_encoder=f"text:{tiny_bert}", image_encoder="test-adapt-image",
                    text_template="{description}", head="linear", shared_dim=8, epochs=1, batch_size=16,
                    heldout_fraction=0.25, output_dir=tmp_path / "heads-only", progress=False)
    with pytest.raises(ValueError, match="trained no text adapter"):
        create_encoder(f"adapted-text:{tmp_path / 'heads-only'}")
    with pytest.raises(ValueError, match="adapts a local text tower"):
        train_alignment(colour_catalog, text_encoder="test-adapt-words", image_encoder="test-adapt-image",
                        output_dir=tmp_path / "bad", adaptation="lora", progress=False)


def test_real_minilm_tower_equals_text_minilm_and_lora_gets_gradients():
    from prismrec.encoders.text import minilm_path

    texts = ["a film about a ship in a storm", "a quiet love story in a small city"]
    frozen, _ = create_encoder("text:minilm", max_seq_length=32).encode_batch(texts)
    tower = build_tower(minilm_path(), AdaptationConfig("lora", trainable_layers=1, max_seq_length=32))
    assert (tower.n_layers, tower.frozen_layers, tower.hidden_size) == (6, 5, 384)
    vectors = tower.top(*tower.lower(texts))
    np.testing.assert_allclose(vectors.detach().numpy(), frozen, atol=1e-5)
    (vectors[0] @ vectors[1]).backward()
    grads = {name: p.grad for name, p in tower.named_parameters() if p.requires_grad}
    assert any(g is not None and g.abs().sum() > 0 for name, g in grads.items() if "lora_B" in name)
