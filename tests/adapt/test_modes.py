"""The ``encoder_mode`` switch in a run config: frozen, finetuned (re-encoded under a new id), end2end."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import write_own_catalogue

import prismrec.encoders  # noqa: F401
from tiny_models import one_torch_thread, tiny_bert, tiny_clip  # noqa: F401  (fixtures)
from prismrec.config import ConfigError, parse_config
from prismrec.experiment import run_comparison
from prismrec.pipeline import build_models, compute_features, fit_model, load_data, split_data

TEMPLATE = {"template": "{title}. {description}"}
VBPR_PARAMS = {"epochs": 2, "factors": 4, "visual_factors": 4, "batch_size": 64, "early_stopping_metric": "ndcg@5"}


def _config(tmp_path, features: dict, models: list) -> dict:
    path = write_own_catalogue(tmp_path, with_images=True)
    raw = yaml.safe_load(path.read_text())
    raw.update(features=features, models=models)
    return raw, str(path)


def test_finetuned_text_feature_is_re_encoded_by_the_adapted_tower_under_a_new_id(tiny_bert, tmp_path):
    train = {"image_encoder": "test-adapt-png", "epochs": 2, "batch_size": 8, "head": "linear", "shared_dim": 4,
             "adaptation_options": {"max_seq_length": 16}}
    features = {"frozen": {"encoder": f"text:{tiny_bert}", "options": TEMPLATE},
                "tuned": {"encoder": f"text:{tiny_bert}", "options": TEMPLATE, "encoder_mode": "finetuned",
                          "train": train}}
    raw, source = _config(tmp_path, features, [{"name": "vbpr", "features": ["frozen", "tuned"],
                                                "params": VBPR_PARAMS}])
    config = parse_config(raw, source)
    computed = compute_features(config, load_data(config), progress=False)
    frozen, tuned = computed.info["frozen"], computed.info["tuned"]
    assert tuned["encoder"].startswith("adapted-text:") and tuned["encoder_mode"] == "finetuned"
    assert tuned["encoder_id"].startswith("adapted-text:") and tuned["encoder_id"] != frozen["encoder_id"]
    assert computed.arrays["tuned"].shape == computed.arrays["frozen"].shape == (30, 32)
    assert abs(computed.arrays["tuned"] - computed.arrays["frozen"]).max() > 1e-4
    again = compute_features(config, load_data(config), progress=False)  # resumes: the same adapter, same id
    assert again.info["tuned"]["encoder_id"] == tuned["encoder_id"]


def test_end2end_feature_trains_a_copy_of_the_encoder_inside_vbpr(tiny_bert, tmp_path):
    features = {"text": {"encoder": f"text:{tiny_bert}", "options": TEMPLATE, "encoder_mode": "end2end",
                         "train": {"adaptation": "adapter", "max_seq_length": 16}}}
    raw, source = _config(tmp_path, features, [{"name": "vbpr", "features": ["text"], "params": VBPR_PARAMS}])
    config = parse_config(raw, source)
    dataset = load_data(config)
    computed = compute_features(config, dataset, progress=False)
    module = computed.modules["text"]
    assert computed.info["text"]["encoder_mode"] == "end2end" and computed.arrays["text"].shape == (30, 32)
    before = {name: value.detach().clone() for name, value in module.named_parameters()}
    (model_config, model), = build_models(config)
    fit_model(model_config, model, split_data(config, dataset), computed, progress=False)
    trained = model._item_feature_modules["text"]
    assert trained is not module  # each fit trains its own copy; the pipeline's module stays as built
    assert all(torch.equal(value, before[name]) for name, value in module.named_parameters())
    moved = [name for name, value in trained.named_parameters() if not torch.equal(value, before[name])]
    assert moved and all("adapter_" in name for name in moved)
    result = run_comparison(config, progress=False, log=lambda *a: None)
    assert result["config"]["features"]["text"]["encoder_mode"] == "end2end"


def test_image_features_fine_tune_through_aligned_heads_and_train_a_head_end_to_end(tiny_bert, tmp_path):
    features = {"image": {"encoder": "test-adapt-png"},
                "image_tuned": {"encoder": "test-adapt-png", "encoder_mode": "finetuned",
                                "train": {"text_encoder": f"text:{tiny_bert}", "text_template": "{description}",
                                          "epochs": 2, "batch_size": 8, "head": "linear", "shared_dim": 3}},
                "image_e2e": {"encoder": "test-adapt-png", "encoder_mode": "end2end"}}
    raw, source = _config(tmp_path, features, [{"name": "vbpr", "features": ["image", "image_tuned", "image_e2e"],
                                                "params": VBPR_PARAMS}])
    config = parse_config(raw, source)
    dataset = load_data(config)
    computed = compute_features(config, dataset, progress=False)
    assert computed.info["image_tuned"]["encoder"].startswith("align:")
    assert computed.arrays["image_tuned"].shape == (30, 3)  # the aligned image view, in the shared space
    module = computed.modules["image_e2e"]
    assert [tuple(p.shape) for p in module.trainable_parameters()] == [(4, 4), (4,)]
    np.testing.assert_allclose(computed.arrays["image_e2e"], computed.arrays["image"], atol=1e-6)  # identity start
    (model_config, model), = build_models(config)
    fit_model(model_config, model, split_data(config, dataset), computed, progress=False)
    head = model._item_feature_modules["image_e2e"].head
    assert not torch.equal(head.weight, torch.eye(4))


def test_clip_features_fine_tune_with_lora_and_train_the_text_tower_end_to_end(tiny_clip, tmp_path):
    train = {"epochs": 1, "batch_size": 8, "head": "linear", "shared_dim": 4,
             "adaptation_options": {"max_seq_length": 24}}
    features = {"clip_tuned": {"encoder": f"clip:{tiny_clip}", "encoder_mode": "finetuned", "train": train},
                "clip_text_e2e": {"encoder": f"clip-text:{tiny_clip}", "encoder_mode": "end2end",
                                  "options": TEMPLATE, "train": {"max_seq_length": 24}}}
    raw, source = _config(tmp_path, features, [{"name": "vbpr", "features": ["clip_tuned", "clip_text_e2e"],
                                                "params": VBPR_PARAMS}])
    config = parse_config(raw, source)
    dataset = load_data(config)
    computed = compute_features(config, dataset, progress=False)
    tuned = computed.info["clip_tuned"]["encoder"]
    assert tuned.startswith(f"align:{config.feature_cache}")  # in the store, never inside the CLIP folder
    meta = yaml.safe_load((Path(tuned.partition(":")[2]) / "checkpoint" / "alignment.json").read_text())
    assert meta["config"]["text_encoder"] == f"clip-text:{tiny_clip}" and meta["config"]["adaptation"]["adaptation"] == "lora"
    assert computed.arrays["clip_tuned"].shape == (30, 4)
    module = computed.modules["clip_text_e2e"]
    before = {name: value.detach().clone() for name, value in module.named_parameters()}
    (model_config, model), = build_models(config)
    fit_model(model_config, model, split_data(config, dataset), computed, progress=False)
    trained = model._item_feature_modules["clip_text_e2e"]
    moved = [name for name, value in trained.named_parameters() if not torch.equal(value, before[name])]
    assert moved and all("_proj.lora_" in name for name in moved)


@pytest.mark.parametrize("feature, model, message", [
    ({"encoder": "audio:logmel", "encoder_mode": "finetuned"}, "vbpr", "finetuned adapts text, image or CLIP"),
    ({"encoder": "image:efficientnet-lite0", "encoder_mode": "end2end", "train": {"adaptation": "lora"}}, "vbpr",
     r"unknown key 'features.f.train.adaptation' for an end2end head"),
    ({"encoder": "text:minilm", "encoder_mode": "finetuned", "train": {"text_encoder": "x"}},
     "vbpr", r"unknown key 'features.f.train.text_encoder'"),
    ({"encoder": "text:minilm", "encoder_mode": "frozzen"}, "vbpr", "encoder_mode must be one of frozen"),
    ({"encoder": "text:minilm", "encoder_mode": "end2end", "train": {"rank": 2}}, "vbpr",
     r"unknown key 'features.f.train.rank' for end2end"),
    ({"encoder": "text:minilm", "encoder_mode": "finetuned", "options": {"batch_size": 2}}, "vbpr",
     "cannot be used with encoder_mode finetuned"),
    ({"encoder": "text:minilm", "encoder_mode": "end2end"}, "lightgcn", "LightGCN cannot train an encoder end to end"),
])
def test_bad_encoder_modes_fail_when_the_config_is_read(feature, model, message):
    raw = {"data": {"loader": "recbole_ml100k"}, "features": {"f": feature},
           "models": [{"name": model, "features": ["f"]}]}
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_prismrec_align_trains_an_adapter_from_the_command_line(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from prismrec.cli import app

    config = write_own_catalogue(tmp_path, with_images=True)
    args = ["align", "--config", str(config), "--out", str(tmp_path / "align"), "--epochs", "1", "--batch-size", "8",
            "--text-encoder", f"text:{tiny_bert}", "--image-encoder", "test-adapt-png", "--template", "{title}",
            "--shared-dim", "4", "--adaptation", "adapter", "--adapt", "max_seq_length=16",
            "--adapt", "adapter_bottleneck=4", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"adapted-text:{tmp_path / 'align'}" in result.output
    meta = yaml.safe_load((tmp_path / "align" / "checkpoint" / "alignment.json").read_text())
    assert meta["config"]["adaptation"]["adapter_bottleneck"] == 4 and meta["text_adapter_file"]
