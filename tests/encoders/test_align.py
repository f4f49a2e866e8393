"""The ``align`` dual encoder on tiny synthetic towers whose pairs share a known latent vector.

Each synthetic item has a latent ``z`` (8 numbers). Its text spells ``z`` as weighted
words (``"c0=0.53 c1=-1.20 ..."``) and its "image" file stores ``z`` plus noise; the towers
map these through fixed random matrices of different sizes, so the two towers' features
are unrelated until the heads learn to align them.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
from conftest import shared_data

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.align import AlignmentHeads, AlignEncoder, contrastive_loss, reconstructive_loss
from prismrec.encoders.align_report import random_baselines, recall_at_k
from prismrec.encoders.align_train import split_pairs, train_alignment
from prismrec.encoders.base import Encoder
from prismrec.encoders.registry import available_encoders, create_encoder, register_encoder

LATENT = 8


class _WordTower(Encoder):
    """Text tower: sum over ``word=weight`` tokens of weight * fixed word vector, then tanh."""

    modality, name, dim = "text", "test-align-text", 12

    def __init__(self, template: str = "{description}") -> None:
        self.template = template
        self.matrix = np.random.default_rng(101).normal(size=(LATENT, self.dim)).astype(np.float32)

    def contents(self, catalog):
        return catalog.compose_text(self.template)

    def encode_batch(self, contents):
        out, errors = np.zeros((len(contents), self.dim), np.float32), []
        for row, text in enumerate(contents):
            tokens = dict(token.split("=") for token in text.split() if "=" in token)
            if not tokens:
                errors.append("no weighted words")
                continue
            z = np.array([float(tokens.get(f"c{i}", 0.0)) for i in range(LATENT)], np.float32)
            out[row], _ = np.tanh(z @ self.matrix), errors.append(None)
        return out, errors

    def weights_hash(self):
        return hashlib.sha256(self.matrix.tobytes()).hexdigest()

    def config(self):
        return {"template": self.template}


class _ArrayImageTower(Encoder):
    """Image tower: ``tanh(z @ W)`` of the vector stored in an ``.npy`` file."""

    modality, name, dim = "image", "test-align-image", 10

    def __init__(self) -> None:
        self.matrix = np.random.default_rng(202).normal(size=(LATENT, self.dim)).astype(np.float32)

    def contents(self, catalog):
        return list(catalog.media_paths("image"))

    def encode_batch(self, contents):
        out, errors = np.zeros((len(contents), self.dim), np.float32), []
        for row, path in enumerate(contents):
            try:
                out[row] = np.tanh(np.load(path) @ self.matrix)
                errors.append(None)
            except (OSError, ValueError) as error:
                errors.append(f"unreadable array: {type(error).__name__}")
        return out, errors

    def weights_hash(self):
        return hashlib.sha256(self.matrix.tobytes()).hexdigest()


for _name, _cls in (("test-align-text", _WordTower), ("test-align-image", _ArrayImageTower)):
    if _name not in available_encoders():
        register_encoder(_name, lambda argument, _cls=_cls, **options: _cls(**options))

TOWERS = {"text_encoder": "test-align-text", "image_encoder": "test-align-image"}
FAST = {**TOWERS, "head": "linear", "shared_dim": 16, "batch_size": 32, "learning_rate": 0.01, "progress": False}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> ItemCatalog:
    """150 items: rows 0-139 have both modalities, then text only, image only, nothing, corrupt image."""
    folder = tmp_path_factory.mktemp("arrays")
    rng = np.random.default_rng(7)
    records = []
    for row in range(150):
        z = rng.normal(size=LATENT).astype(np.float32)
        path = folder / f"{row}.npy"
        np.save(path, z + 0.05 * rng.normal(size=LATENT).astype(np.float32))
        text = " ".join(f"c{i}={v:.3f}" for i, v in enumerate(z))
        records.append({"item": f"i{row}", "description": text, "image": str(path)})
    for row in range(140, 145):
        records[row]["image"] = None  # text only
    for row in range(145, 148):
        records[row]["description"] = None  # image only
    records[148]["description"], records[148]["image"] = None, None  # nothing
    (folder / "149.npy").write_bytes(b"not an array")  # text + corrupt image
    return ItemCatalog.from_records(records, text_fields=["description"], media_fields={"image": "image"})


@pytest.fixture(scope="module")
def trained(catalog, tmp_path_factory):
    output = tmp_path_factory.mktemp("align-contrastive")
    return train_alignment(catalog, epochs=30, output_dir=output, **FAST), output


def test_contrastive_loss_known_value_and_temperature_clamp():
    eye = torch.eye(2)
    # logits [[1, 0], [0, 1]]: each row's cross-entropy is log(1 + e^-1)
    assert contrastive_loss(eye, eye, torch.tensor(0.0)).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    # a log-scale of 10 is clamped to log(100): logits [[100, 0], [0, 100]]
    assert contrastive_loss(eye, eye, torch.tensor(10.0)).item() == pytest.approx(math.log(1 + math.exp(-100)), abs=1e-9)
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert contrastive_loss(eye, swapped, torch.tensor(0.0)).item() == pytest.approx(math.log(1 + math.e), abs=1e-6)


def test_reconstructive_loss_averages_four_cross_and_self_terms():
    decoder = torch.nn.Identity()
    text_emb, image_emb = torch.zeros(1, 2), torch.ones(1, 2)
    text_target, image_target = torch.zeros(1, 2), torch.full((1, 2), 3.0)
    # terms: text<-text 0, text<-image 1, image<-text 9, image<-image 4
    loss = reconstructive_loss(text_emb, image_emb, text_target, image_target, decoder, decoder)
    assert loss.item() == pytest.approx((0 + 1 + 9 + 4) / 4)


def test_recall_at_k_and_random_baselines():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.8, 0.2, 0.3], [0.1, 0.2, 0.3]])
    # ranks of the diagonal: 0, 2, 0
    assert recall_at_k(scores, ks=(1, 2, 3)) == {"R@1": pytest.approx(2 / 3), "R@2": pytest.approx(2 / 3), "R@3": 1.0}
    expected, empirical = random_baselines(20, seed=0)
    assert expected["image->text"] == {"R@1": 0.05, "R@5": 0.25, "R@10": 0.5}
    assert abs(empirical["text->image"]["R@10"] - 0.5) < 0.35


def test_split_is_seeded_and_uses_only_paired_items():
    mask = np.array([True] * 18 + [False, False])
    train, heldout = split_pairs(mask, heldout_fraction=0.25, seed=3)
    assert len(heldout) == 4 and len(train) == 14
    assert set(train) | set(heldout) == set(range(18)) and not set(train) & set(heldout)
    again, _ = split_pairs(mask, heldout_fraction=0.25, seed=3)
    other, _ = split_pairs(mask, heldout_fraction=0.25, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    with pytest.raises(ValueError, match="only 3 items have both"):
        split_pairs(np.ones(3, bool), heldout_fraction=0.5, seed=0)


def test_trained_alignment_beats_untrained_and_random(trained):
    report, output = trained
    assert report.n_train_pairs + report.n_heldout_pairs == 140  # items 0-139 are the only pairs
    recall = report.recall
    for direction in ("image->text", "text->image"):
        assert recall["trained"][direction]["R@1"] >= 0.7
        assert recall["untrained"][direction]["R@5"] < 0.6
    assert recall["trained"]["mean"] > recall["untrained"]["mean"] + 0.4
    assert recall["random_expected"]["image->text"]["R@5"] == pytest.approx(5 / 28)
    saved = json.loads((output / "alignment_report.json").read_text())
    assert saved["recall"]["trained"]["mean"] == pytest.approx(recall["trained"]["mean"])
    assert "| trained |" in (output / "alignment_report.md").read_text()
    assert [h["epoch"] for h in report.history] == list(range(1, 31))


@pytest.mark.parametrize("objective", ["contrastive", "reconstructive"])
def test_mlp_heads_and_reconstructive_objective_also_align(objective, catalog, tmp_path):
    report = train_alignment(catalog, objective=objective, epochs=40, output_dir=tmp_path, **{**FAST, "head": "mlp"})
    assert report.objective == objective and report.config["head"] == "mlp"
    assert report.recall["trained"]["mean"] > report.recall["untrained"]["mean"] + 0.3
    assert report.recall["trained"]["image->text"]["R@5"] >= 0.7


def test_resume_two_plus_two_equals_four_straight(catalog, tmp_path, monkeypatch):
    straight = train_alignment(catalog, epochs=4, output_dir=tmp_path / "straight", **FAST)
    train_alignment(catalog, epochs=2, output_dir=tmp_path / "resumed", **FAST)
    # tower features come from the feature store on resume: the towers are never run again
    monkeypatch.setattr(_ArrayImageTower, "encode_batch", lambda self, contents: 1 / 0)
    monkeypatch.setattr(_WordTower, "encode_batch", lambda self, contents: 1 / 0)
    first = json.loads((tmp_path / "resumed" / "checkpoint" / "alignment.json").read_text())
    assert first["epoch"] == 2
    resumed = train_alignment(catalog, epochs=4, output_dir=tmp_path / "resumed", **FAST)
    assert resumed.resumed_from_epoch == 2 and straight.resumed_from_epoch == 0
    assert resumed.history == straight.history  # epochs 1-2 from the checkpoint, 3-4 trained now
    a = AlignEncoder(tmp_path / "straight").heads.state_dict()
    b = AlignEncoder(tmp_path / "resumed").heads.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    files = sorted(p.name for p in (tmp_path / "resumed" / "checkpoint").iterdir())
    assert files == ["alignment.json", "heads-epoch0004.safetensors", "optimizer-epoch0004.pt"]
    finished = train_alignment(catalog, epochs=3, output_dir=tmp_path / "resumed", **FAST)  # nothing left to do
    assert finished.epochs == 4 and finished.resumed_from_epoch == 4 and finished.recall == resumed.recall


def test_resume_refuses_a_different_run(catalog, tmp_path):
    train_alignment(catalog, epochs=1, output_dir=tmp_path, **FAST)
    with pytest.raises(ValueError, match="differs in objective"):
        train_alignment(catalog, epochs=2, output_dir=tmp_path, objective="reconstructive", **FAST)
    fresh = train_alignment(catalog, epochs=1, output_dir=tmp_path, objective="reconstructive", resume=False, **FAST)
    assert fresh.resumed_from_epoch == 0


def test_encoder_combines_modalities_and_masks_missing(catalog, trained):
    _, output = trained
    encoder = create_encoder(f"align:{output}")
    assert encoder.dim == 16 and encoder.id.startswith("align@")
    encoded = encoder.encode(catalog)
    text_tower, image_tower = _WordTower(), _ArrayImageTower()
    text_vectors, _ = text_tower.encode_batch([t or "" for t in text_tower.contents(catalog)])
    image_vectors, _ = image_tower.encode_batch(list(catalog.media_paths("image")[:3]))
    with torch.no_grad():
        text_emb = encoder.heads.embed_text(torch.from_numpy(text_vectors)).numpy()
        image_emb = encoder.heads.embed_image(torch.from_numpy(image_vectors)).numpy()
    np.testing.assert_allclose(encoded.features[:3], (text_emb[:3] + image_emb) / 2, atol=1e-6)
    np.testing.assert_allclose(encoded.features[140], text_emb[140], atol=1e-6)  # text only
    np.testing.assert_allclose(encoded.features[149], text_emb[149], atol=1e-6)  # corrupt image: text only
    assert encoded.mask[:148].all() and not encoded.mask[148] and encoded.mask[149]
    assert not encoded.features[148].any()
    image_only = create_encoder(f"align:{output}", view="image").encode(catalog)
    assert not image_only.mask[140:145].any() and image_only.mask[145:148].all() and not image_only.mask[149]
    assert 149 in image_only.errors and "unreadable array" in image_only.errors[149]
    assert create_encoder(f"align:{output}", view="image").id != encoder.id


def test_align_encoder_goes_through_the_feature_store(catalog, trained, tmp_path):
    from prismrec.encoders.store import encode_catalog

    _, output = trained
    encoder = create_encoder(f"align:{output}")
    direct = encoder.encode(catalog)
    stored = encode_catalog(encoder, catalog, tmp_path, progress=False)
    again = encode_catalog(encoder, catalog, tmp_path, progress=False)
    np.testing.assert_allclose(stored.features, direct.features, atol=1e-6)
    assert np.array_equal(stored.mask, direct.mask) and again.report.n_encoded == 0


def test_checkpoint_records_towers_and_hash_covers_heads(catalog, trained, tmp_path):
    _, output = trained
    meta = json.loads((output / "checkpoint" / "alignment.json").read_text())
    assert meta["towers"]["text"]["spec"] == "test-align-text"
    assert meta["towers"]["image"]["weights_hash"] == _ArrayImageTower().weights_hash()
    assert meta["config"]["text_template"] is None and meta["epoch"] == 30
    other = tmp_path / "other-seed"
    train_alignment(catalog, epochs=1, output_dir=other, seed=1, **FAST)
    assert AlignEncoder(other).weights_hash() != AlignEncoder(output).weights_hash()


def test_text_template_reaches_the_text_tower_and_checkpoint(catalog, tmp_path):
    train_alignment(catalog, epochs=1, output_dir=tmp_path, text_template="{description} extra", **FAST)
    encoder = AlignEncoder(tmp_path)
    assert encoder.text_tower.template == "{description} extra"
    assert encoder.config()["text_template"] == "{description} extra"


def test_changed_tower_weights_are_refused(trained, monkeypatch):
    _, output = trained
    monkeypatch.setattr(_ArrayImageTower, "weights_hash", lambda self: "0" * 64)
    with pytest.raises(ValueError, match="image tower 'test-align-image' weights"):
        AlignEncoder(output)


def test_missing_checkpoint_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no alignment checkpoint"):
        create_encoder(f"align:{tmp_path}")
    with pytest.raises(ValueError, match="needs a checkpoint folder"):
        create_encoder("align")
    with pytest.raises(ValueError, match="objective must be one of"):
        AlignmentHeads(text_dim=2, image_dim=2, objective="masked")
    with pytest.raises(ValueError, match="text tower needs a text encoder"):
        train_alignment(None, text_encoder="test-align-image", image_encoder="test-align-image",
                        output_dir=tmp_path, progress=False)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("objective", ["contrastive", "reconstructive"])
def test_ml100k_posters_and_plots_align(objective, tmp_path_factory):
    """Real towers (MiniLM, EfficientNet-Lite0) on ML-100k: trained heads beat untrained and random."""
    folder = shared_data("movielens-100k-mm")
    import prismrec.encoders  # noqa: F401  (registers the towers)
    from prismrec.data.loaders.movielens import load_movielens_100k

    catalog = load_movielens_100k(folder).catalog
    store = tmp_path_factory.getbasetemp() / "ml100k-features"  # shared by both objectives
    report = train_alignment(catalog, text_template="{title}. {plot}", objective=objective, epochs=10,
                             output_dir=tmp_path_factory.mktemp(objective), feature_store=store, progress=False)
    assert report.n_heldout_pairs > 300
    trained, untrained = report.recall["trained"], report.recall["untrained"]
    for direction in ("image->text", "text->image"):
        assert trained[direction]["R@10"] > 2 * report.recall["random_expected"][direction]["R@10"]
        assert trained[direction]["R@10"] > untrained[direction]["R@10"] + 0.03
