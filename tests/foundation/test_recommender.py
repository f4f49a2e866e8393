"""The foundation Recommender: resume after a kill, refusing foreign checkpoints, images, schemes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prismrec.data.splits import per_user_ratio
from prismrec.models import Recommender
from prismrec.models.foundation import FoundationRecommender
from conftest import make_checkerboard  # the root tests/conftest.py
from foundation_parts import image_features, item_index, one_thread, tokenizer  # noqa: F401 (fixtures)

TINY = dict(preset="tiny", learning_rate=0.01, batch_size=32, n_clusters=2, leaf_size=8, beam_size=0,
            validation_users=0, tokenizer_vocab=100, dropout=0.1, patience=10)


@pytest.fixture(scope="module")
def split():
    return per_user_ratio(make_checkerboard(30, 16), (0.7, 0.1, 0.2), seed=0)


def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(split, tmp_path):
    whole = FoundationRecommender(**TINY, epochs=3).fit(split.train, split.valid)
    FoundationRecommender(**TINY, epochs=1, checkpoint_dir=str(tmp_path)).fit(split.train, split.valid)
    assert (tmp_path / "checkpoint.pt").is_file()
    resumed = FoundationRecommender(**TINY, epochs=3, checkpoint_dir=str(tmp_path)).fit(split.train, split.valid)
    assert len(resumed.epoch_seconds_) == 2  # epochs 2 and 3 only
    assert resumed.loss_history_ == pytest.approx(whole.loss_history_)
    assert torch.allclose(resumed.score(np.arange(30)), whole.score(np.arange(30)), atol=1e-5)


def test_a_checkpoint_of_another_id_scheme_is_refused(split, tmp_path):
    FoundationRecommender(**{**TINY, "id_scheme": "random", "id_base": 4}, epochs=1,
                          checkpoint_dir=str(tmp_path)).fit(split.train, split.valid)
    other = FoundationRecommender(**TINY, epochs=2, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match="another (tokenizer|id scheme).*refusing to resume"):
        other.fit(split.train, split.valid)


def test_image_tokens_and_semantic_ids_fit_save_and_reload(split, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 6)).astype(np.float32)
    images[2] = np.nan  # an item without an image: its image tokens are masked
    content = rng.normal(size=(16, 4)).astype(np.float32)
    model = FoundationRecommender(**{**TINY, "id_scheme": "semantic", "codebook_size": 4}, epochs=2,
                                  image_feature="image", tuning="adapters")
    model.fit(split.train, split.valid, item_features={"image": images, "text": content})
    assert model.has_image_.tolist().count(False) == 1
    assert model.tuning_report_["mode"] == "adapters"
    assert model.tuning_report_["trainable_parameters"] < model.tuning_report_["total_parameters"]
    model.save(tmp_path / "m")
    json.loads((tmp_path / "m" / "config.json").read_text())
    loaded = Recommender.load(tmp_path / "m")
    assert torch.equal(loaded.score(np.arange(30)), model.score(np.arange(30)))


def test_missing_features_are_named(split):
    with pytest.raises(ValueError, match="needs the item feature array 'image'"):
        FoundationRecommender(**TINY, epochs=1, image_feature="image").fit(split.train)
    with pytest.raises(ValueError, match="needs the item feature array 'text'"):
        FoundationRecommender(**TINY, epochs=1, id_scheme="semantic").fit(split.train)


def test_a_local_pretrained_backbone_is_extended_with_item_tokens_and_reloads(split, tmp_path):
    from prismrec.foundation.backbone import build_t5, save_backbone, train_tokenizer

    plain = train_tokenizer(["user 3 has bought these items , what next ?"], [], vocab_size=60)
    save_backbone(build_t5("tiny", len(plain)), plain, tmp_path / "pretrained")
    model = FoundationRecommender(**{**TINY, "pretrained": str(tmp_path / "pretrained")}, epochs=1)
    model.fit(split.train, split.valid)
    assert model.backbone_config_["vocab_size"] > len(plain)  # item and image tokens were added
    model.save(tmp_path / "m")
    assert torch.equal(Recommender.load(tmp_path / "m").score(np.arange(30)), model.score(np.arange(30)))
    with pytest.raises(FileNotFoundError, match="not a local folder, and downloading is off"):
        FoundationRecommender(**{**TINY, "pretrained": "t5-small"}, epochs=1).fit(split.train)


@pytest.mark.parametrize("tuning", ["lora", "prompt"])
def test_peft_tuned_models_score_and_reload(tuning, split, tmp_path):
    model = FoundationRecommender(**TINY, epochs=1, tuning=tuning).fit(split.train, split.valid)
    report = model.tuning_report_
    assert report["mode"] == tuning and report["trainable_parameters"] < report["total_parameters"]
    model.save(tmp_path / tuning)
    assert torch.equal(Recommender.load(tmp_path / tuning).score(np.arange(30)), model.score(np.arange(30)))


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_peak_memory_and_cpu_seconds_cover_the_training_epochs_only(split):
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB touched before fit: not training memory
    before = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024
    del ballast
    model = FoundationRecommender(**TINY, epochs=2).fit(split.train, split.valid)
    assert model.peak_memory_mb_ < before - 200
    assert 0 < model.memory_at_start_mb_ <= model.peak_memory_mb_
    assert len(model.epoch_cpu_seconds_) == 2 and all(s > 0 for s in model.epoch_cpu_seconds_)


def test_positions_per_user_caps_each_users_examples_with_a_fresh_draw_per_epoch(split):
    from prismrec.foundation.trainer import sample_positions

    users, positions = np.repeat([0, 1, 2], [5, 1, 3]), np.concatenate([np.arange(1, 6), [1], np.arange(1, 4)])
    rng = np.random.default_rng(0)
    draws = [sample_positions(users, positions, 2, rng) for _ in range(5)]
    for kept_users, kept_positions in draws:
        assert np.bincount(kept_users).tolist() == [2, 1, 2]
        assert set(zip(kept_users, kept_positions)) <= set(zip(users, positions))
    assert len({tuple(p) for _, p in draws}) > 1
    with pytest.raises(ValueError, match="positions_per_user must be positive"):
        sample_positions(users, positions, 0, rng)
    model = FoundationRecommender(**TINY, epochs=1, positions_per_user=1).fit(split.train, split.valid)
    assert model.score(np.arange(30)).shape == (30, 16)
