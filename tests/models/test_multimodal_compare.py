"""The multimodal models through `prismrec compare`: config features become `feature_names`,
arrays come from an MMRec folder, and the content models beat MostPopular on known data."""
from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from prismrec.cli import app

CONFIG = """
name: two communities with image and text features
data: {loader: mmrec, path: data}
split: {strategy: random_per_user, options: {ratios: [0.8, 0.1, 0.1], seed: 0}}
features:
  image: {encoder: "dataset:image"}
  text: {encoder: "dataset:text"}
evaluation: {ks: [10], topk: 10}
threads: 1
models:
  - name: mostpop
  - name: itemknn_cbf
    features: [image, text]
  - name: freedom
    features: [image, text]
    params: {embedding_size: 16, knn_k: 5, epochs: 8, learning_rate: 0.02, early_stopping_metric: ndcg@10}
  - name: lattice
    features: [image]
    params: {embedding_size: 16, knn_k: 5, epochs: 8, learning_rate: 0.02, early_stopping_metric: ndcg@10}
"""


def write_mmrec_folder(folder, n_users: int = 120, n_items: int = 80, seed: int = 0) -> None:
    """Two communities of users, each liking one half of the items; features mark the halves."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    lines = ["userID\titemID\tx_label"]
    half = n_items // 2
    for user in range(n_users):
        block = user % 2
        for position, item in enumerate(rng.choice(np.arange(block * half, (block + 1) * half), 12, replace=False)):
            lines.append(f"{user}\t{item}\t{0 if position < 9 else 1 if position < 10 else 2}")
    (folder / "toy.inter").write_text("\n".join(lines) + "\n")
    features = rng.normal(0.0, 0.3, (n_items, 16)).astype(np.float32)
    features[np.arange(n_items), np.arange(n_items) // half] += 1.0
    np.save(folder / "image_feat.npy", features)
    np.save(folder / "text_feat.npy", features[:, ::-1].copy())


def test_compare_runs_the_content_models_from_a_config(tmp_path):
    write_mmrec_folder(tmp_path / "data")
    (tmp_path / "toy.yaml").write_text(CONFIG)
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "toy.yaml"), "--out", str(tmp_path / "runs"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    models = json.loads((tmp_path / "runs" / "results.json").read_text())["models"]
    assert models["freedom"]["params"]["feature_names"] == ["image", "text"]  # from the config's features
    assert models["lattice"]["params"]["feature_names"] == ["image"]
    recall = {name: models[name]["metrics"]["recall@10"] for name in ("mostpop", "itemknn_cbf", "freedom", "lattice")}
    # within-community ranking: every content model clearly beats the popularity baseline
    assert min(recall["itemknn_cbf"], recall["freedom"], recall["lattice"]) > recall["mostpop"] + 0.05, recall
