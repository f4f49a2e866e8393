"""The serving state behind the HTTP API: vectors, index, seen items, and what was ingested.

:class:`ServingEngine` loads a bundle, turns the model into user and item vectors
(:mod:`prismrec.serving.factors`), indexes the items, and replays the SQLite store, so a
restarted server knows every item and feedback event it acknowledged before. Writes are
committed to the store first and applied in memory after, under one lock.

Example:
    >>> engine = ServingEngine(load_bundle("runs/vbpr"), state_dir="runs/vbpr/state")  # doctest: +SKIP
    >>> engine.recommend("196", k=5)[0]  # doctest: +SKIP
    {'item_id': '242', 'score': 4.1, 'title': 'Kolya (1996)', 'rank': 1}
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from prismrec.models.base import ColdStartError, Recommender
from prismrec.serving.bundle import BUNDLE_INDEX_DIR
from prismrec.serving.catalog import ServingCatalog
from prismrec.serving.factors import FoldIn, factor_view
from prismrec.serving.index import DEFAULT_ANN_THRESHOLD, DEFAULT_EF_SEARCH, HnswIndex, make_index
from prismrec.serving.ingest import ItemEncoders, check_item_id
from prismrec.serving.store import ServingStore


class UnknownId(KeyError):
    """A user or item id the server does not know."""

    def __str__(self) -> str:
        return str(self.args[0])


class ServingEngine:
    """Recommendations, similar items, ingestion and feedback over one bundle (thread-safe)."""

    def __init__(self, bundle, *, state_dir: str | Path, feature_store=None,
                 ann_threshold: int = DEFAULT_ANN_THRESHOLD, fold_in_missing_weight: float = 0.01,
                 fold_in_regularization: float = 1.0, warm_up: bool = False,
                 ef_search: int = DEFAULT_EF_SEARCH) -> None:
        from prismrec.encoders.store import FeatureStore

        self.bundle, self.model = bundle, bundle.model
        self.state_dir = Path(state_dir)
        self.media_dir = self.state_dir / "media"
        self.lock = threading.RLock()
        view = factor_view(self.model)
        self.fixed_user_columns, self.free_dims = view.fixed_user_columns, view.free_dims
        self.user_vectors = view.user_vectors.clone()
        self.fitted_user_vectors = view.user_vectors  # priors for fold-in
        self.item_vectors = view.item_vectors
        self.ann_threshold, self.ef_search = ann_threshold, ef_search
        self.index = make_index(self.item_vectors, ann_threshold=ann_threshold, cache_dir=self.state_dir / "index",
                                prebuilt_dir=bundle.path / BUNDLE_INDEX_DIR, ef_search=ef_search)
        self.fold = (FoldIn(self.item_vectors, free_dims=self.free_dims, missing_weight=fold_in_missing_weight,
                            regularization=fold_in_regularization) if self.free_dims else None)
        self.users = {raw: i for i, raw in enumerate(bundle.users.raw_ids)}
        self.user_ids = list(bundle.users.raw_ids)
        matrix = bundle.train.matrix
        self.seen = [set(matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]].tolist())
                     for u in range(matrix.shape[0])]
        # what a cached answer depends on: `catalog_version` changes with every new item (it may enter any
        # list), `user_versions[row]` with every feedback event of that user (seen items, vector)
        self.catalog_version, self.user_versions = 0, [0] * len(self.user_ids)
        self.catalog = ServingCatalog(bundle.items, bundle.catalog)
        self.feature_store = feature_store or FeatureStore(self.state_dir / "features")
        self._encoders = None
        self.store = ServingStore(self.state_dir / "serving.sqlite3")
        self.replay()
        if warm_up and self.can_add_items and self.bundle.features and not self.encoders.problem:
            self.encoders.warm_up()

    # ------------------------------------------------------------------ reads
    @property
    def can_add_items(self) -> bool:
        return type(self.model).add_items is not Recommender.add_items

    def user_row(self, user_id: str) -> int:
        row = self.users.get(str(user_id))
        if row is None:
            example = self.user_ids[0] if self.user_ids else "none"
            raise UnknownId(f"unknown user {user_id!r}: users are those of the training data or ones that "
                            f"posted feedback (e.g. {example!r})")
        return row

    def recommend(self, user_id: str, k: int = 10, *, exclude_seen: bool = True) -> list[dict]:
        """Top-``k`` items for a user (raw ids, scores, titles), without their seen items by default."""
        with self.lock:
            row = self.user_row(user_id)
            exclude = [self.seen[row]] if exclude_seen else None
            indices, scores = self.index.search(self.user_vectors[row:row + 1], k, exclude)
        return self._ranked(indices[0], scores[0])

    def version(self, user_id: str) -> tuple[int, int, int]:
        """``(row, catalog version, user version)``: a cached list of the user is valid while this is unchanged."""
        with self.lock:
            row = self.user_row(user_id)
            return row, self.catalog_version, self.user_versions[row]

    def _ranked(self, indices, scores) -> list[dict]:
        return [{"rank": rank, "item_id": self.catalog.item_ids[i], "score": float(s),
                 "title": self.catalog.title(i)} for rank, (i, s) in enumerate(zip(indices, scores), 1) if i >= 0]

    def history_rows(self, user_id: str, limit: int = 50) -> list[int]:
        """Item rows the user has seen (training and feedback), in index order."""
        with self.lock:
            return sorted(self.seen[self.user_row(user_id)])[:limit]

    def similar(self, item_id: str, k: int = 10) -> list[dict]:
        """Items whose vectors (user-dependent columns only) are closest in cosine to the item's."""
        if self.free_dims == 0:
            raise ColdStartError(f"{type(self.model).__name__} gives items no vector to compare; "
                                 "similar items need a model such as bpr, lightgcn or vbpr")
        with self.lock:
            row = self.catalog.row(item_id)
            vectors = torch.nn.functional.normalize(self.item_vectors[:, :self.free_dims], dim=1)
            scores = vectors @ vectors[row]
            scores[row] = -torch.inf
            top = torch.topk(scores, min(k, len(scores) - 1))
        return self._ranked(top.indices.numpy(), top.values.numpy())

    def audience(self, item_id: str, k: int = 10, limit: int = 20) -> dict:
        """Users whose top-``k`` (seen items excluded) now holds the item: ``{"count", "users"}``."""
        with self.lock:
            item = self.catalog.row(item_id)
            item_scores = self.user_vectors @ self.item_vectors[item]
            better = torch.zeros(len(self.user_ids), dtype=torch.int64)
            for start in range(0, len(self.user_ids), 2048):
                block = self.user_vectors[start:start + 2048] @ self.item_vectors.T
                for offset, seen in enumerate(self.seen[start:start + 2048]):
                    if seen:
                        block[offset, list(seen)] = -torch.inf
                better[start:start + len(block)] = (block > item_scores[start:start + len(block), None]).sum(1)
            unseen = torch.tensor([item not in seen for seen in self.seen])
            reached = torch.nonzero((better < k) & unseen).flatten()
            order = reached[torch.argsort(better[reached], stable=True)][:limit]
            users = [{"user_id": self.user_ids[u], "rank": int(better[u]) + 1} for u in order.tolist()]
        return {"item_id": item_id, "k": k, "count": int(len(reached)), "users": users}

    # ------------------------------------------------------------------ writes
    @property
    def encoders(self) -> ItemEncoders:
        if self._encoders is None:
            self._encoders = ItemEncoders(self.bundle.features, self.feature_store)
        return self._encoders

    def check_can_ingest(self) -> None:
        """Raise :class:`ColdStartError` saying why this model cannot take new items (before any work)."""
        if not self.can_add_items:
            self.model.add_items({})  # raises the model's own explanation
        if not self.bundle.features:
            raise ColdStartError("the bundle records no feature sources, so new items cannot be encoded")
        if self.encoders.problem:
            raise ColdStartError(self.encoders.problem)

    def add_item(self, item_id: str, fields: dict, image: tuple[str, Path] | None = None) -> dict:
        """Encode, commit, then index one new item; returns what happened (missing content included)."""
        check_item_id(item_id)
        self.check_can_ingest()
        with self.lock:
            if item_id in self.catalog:
                raise ValueError(f"item {item_id!r} already exists; choose another item_id")
        features, missing = self.encoders.encode(self.catalog.new_items_catalog([(item_id, fields, image)]))
        self.store.add_item(item_id, fields, None if image is None else image[0])  # committed: now acknowledge
        with self.lock:
            self._apply_items([(item_id, fields, image)], features)
        return {"item_id": item_id, "missing_content": [name for name, ids in missing.items() if ids]}

    def _apply_items(self, records: list, features: dict) -> None:
        self.model.add_items(features)
        new_rows = factor_view(self.model).item_vectors[len(self.item_vectors):]
        self.item_vectors = torch.cat([self.item_vectors, new_rows])
        if self.index.kind == "exact" and len(self.item_vectors) >= self.ann_threshold:
            self.index = HnswIndex(self.item_vectors, ef_search=self.ef_search)  # the catalogue outgrew exact search
        else:
            self.index.add(new_rows)
        if self.fold is not None:
            self.fold.add_items(new_rows)
        for item_id, fields, image in records:
            self.catalog.append(item_id, fields, None if image is None else image[1])
        self.catalog_version += 1

    def add_interaction(self, user_id: str, item_id: str, *, event: str = "click",
                        timestamp: float | None = None) -> dict:
        """Commit a feedback event, exclude the item for the user at once, and fold it into their vector."""
        check_item_id(user_id, "user_id")
        with self.lock:
            self.catalog.row(item_id)
        seq = self.store.add_interaction(user_id, item_id, event=event, timestamp=timestamp)
        with self.lock:
            row = self._apply_interaction(user_id, item_id)
            folded = self._fold(row)
        return {"seq": seq, "user_id": user_id, "item_id": item_id, "new_user": row >= len(self.fitted_user_vectors),
                "folded_in": folded}

    def _apply_interaction(self, user_id: str, item_id: str) -> int:
        row = self.users.get(user_id)
        if row is None:
            row = self.users[user_id] = len(self.user_ids)
            self.user_ids.append(user_id)
            self.seen.append(set())
            self.user_versions.append(0)
            fresh = torch.zeros(1, self.user_vectors.shape[1])
            fresh[:, self.free_dims:] = 1.0
            self.user_vectors = torch.cat([self.user_vectors, fresh])
        self.seen[row].add(self.catalog.row(item_id))
        self.user_versions[row] += 1
        return row

    def _fold(self, row: int) -> bool:
        if self.fold is None:
            return False
        prior = self.fitted_user_vectors[row] if row < len(self.fitted_user_vectors) else None
        positives = self.item_vectors[sorted(self.seen[row])]
        self.user_vectors[row, :self.free_dims] = self.fold.user_vector(positives, prior)
        return True

    def replay(self) -> None:
        """Re-apply the stored items (re-encoded through the feature store: cache hits) and feedback."""
        records = [(s.item_id, s.fields, None if s.image_sha256 is None else self._media_path(s.image_sha256))
                   for s in self.store.items()]
        if records:
            features, _ = self.encoders.encode(self.catalog.new_items_catalog(records))
            self._apply_items(records, features)
        touched = {self._apply_interaction(e.user_id, e.item_id) for e in self.store.interactions()}
        for row in touched:
            self._fold(row)

    def _media_path(self, digest: str) -> tuple[str, Path]:
        matches = sorted(self.media_dir.glob(f"{digest}.*"))
        if not matches:
            raise FileNotFoundError(f"{self.media_dir}: the stored image {digest} of an ingested item is missing")
        return digest, matches[0]

    def close(self) -> None:
        self.store.close()
