"""Serving a VBPR bundle fitted on MovieLens-100k-MM (posters + plots): a re-ingested film finds its sequels.

Slow (it encodes 1,682 posters and plots unless the feature cache is warm) and needs ../shared/data.
"""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import shared_data
from prismrec.cli import app
from prismrec.serving.app import ServingSettings, create_app
from prismrec.serving.bundle import load_bundle
from prismrec.serving.engine import ServingEngine

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def test_star_wars_ingested_again_is_most_similar_to_star_wars_and_reaches_users(tmp_path):
    data = shared_data("movielens-100k-mm")
    config = tmp_path / "run.yaml"
    config.write_text(f"data: {{loader: movielens_100k, path: {data}}}\n"
                      "split: {strategy: random_per_user, options: {ratios: [0.8, 0.1, 0.1], seed: 2024}}\n"
                      "features:\n  poster: {encoder: 'image:efficientnet-lite0'}\n"
                      "  plot: {encoder: 'text:minilm', options: {template: '{title}. {plot}'}}\n"
                      f"feature_cache: {tmp_path / 'cache'}\nthreads: 1\n"
                      "models: [{name: vbpr, features: [poster, plot], params: {epochs: 20, seed: 0, "
                      "early_stopping_metric: ndcg@20, patience: 3, eval_every: 2}}]\n")
    result = CliRunner().invoke(app, ["fit", str(config), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    engine = ServingEngine(load_bundle(tmp_path / "run"), state_dir=tmp_path / "state",
                           feature_store=None)
    client = TestClient(create_app(engine, ServingSettings(api_key=None)))
    star_wars = client.get("/items/50").json()
    assert star_wars["title"] == "Star Wars (1977)" and star_wars["has_image"]
    poster = (data / "posters" / "50.jpg").read_bytes()
    added = client.post("/items", data={"item_id": "star-wars-again", "title": "Star Wars (1977)",
                                        "fields": '{"plot": "' + star_wars["fields"]["plot"].replace('"', "'") + '"}'},
                        files={"image": ("50.jpg", poster, "image/jpeg")})
    assert added.status_code == 201, added.text
    similar = [s["item_id"] for s in client.get("/items/star-wars-again/similar", params={"k": 5}).json()["items"]]
    assert similar[0] == "50"
    assert {"172", "181"} & set(similar)  # The Empire Strikes Back, Return of the Jedi
    assert client.get("/items/star-wars-again/audience", params={"k": 20}).json()["count"] > 0
