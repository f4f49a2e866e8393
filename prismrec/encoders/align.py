"""``align``: PrismRec's own CLIP-style dual encoder, trained in-domain on item image-text pairs.

Two pretrained towers (a text encoder and an image encoder, both frozen) feed trainable
projection heads into one shared space, where embeddings are L2-normalised. Two objectives
(the two pretraining paradigms of multimodal recommendation surveys):

* ``"contrastive"``: symmetric InfoNCE with a learnable, log-parameterised, clamped
  temperature (as CLIP);
* ``"reconstructive"``: a cross-modal autoencoder; shared linear decoders must rebuild
  *both* towers' (standardised) features from *either* modality's shared embedding, so a
  text embedding and its image embedding are pushed to the same point.

Training lives in :mod:`prismrec.encoders.align_train`. A trained checkpoint is an
:class:`~prismrec.encoders.base.Encoder`: ``create_encoder("align:<checkpoint-dir>")``.
Its vector per item is the mean of the normalised text and image embeddings when both
exist, either one otherwise; ``view="text"`` / ``view="image"`` give one modality only.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prismrec.encoders.base import Encoder, hash_state_dict
from prismrec.encoders.registry import create_encoder, register_encoder
from prismrec.encoders.store import FeatureStore, cached_encode_batch
from prismrec.io import atomic_path, atomic_write_json

CHECKPOINT_FORMAT = "prismrec-align/1"
MAX_LOGIT_SCALE = math.log(100.0)
OBJECTIVES = ("contrastive", "reconstructive")
HEADS = ("linear", "mlp")
VIEWS = ("both", "text", "image")


def _projection(in_dim: int, out_dim: int, head: str) -> nn.Module:
    if head == "linear":
        return nn.Linear(in_dim, out_dim)
    if head == "mlp":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")


class AlignmentHeads(nn.Module):
    """Projection heads (plus decoders for the reconstructive objective) over tower features.

    Tower features are standardised with training-set statistics (buffers, saved with the
    heads) before projection.

    Example:
        >>> heads = AlignmentHeads(text_dim=4, image_dim=6, shared_dim=3)
        >>> heads.embed_text(torch.ones(2, 4)).norm(dim=1).tolist()  # doctest: +ELLIPSIS
        [1.0..., 1.0...]
    """

    def __init__(self, *, text_dim: int, image_dim: int, shared_dim: int = 256, head: str = "linear",
                 objective: str = "contrastive", temperature: float = 0.07) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective
        self.text_head = _projection(text_dim, shared_dim, head)
        self.image_head = _projection(image_dim, shared_dim, head)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        if objective == "reconstructive":
            self.text_decoder = nn.Linear(shared_dim, text_dim)
            self.image_decoder = nn.Linear(shared_dim, image_dim)
        for name, dim, fill in [("text_mean", text_dim, 0.0), ("text_scale", text_dim, 1.0),
                                ("image_mean", image_dim, 0.0), ("image_scale", image_dim, 1.0)]:
            self.register_buffer(name, torch.full((dim,), fill))

    def set_standardisation(self, text_features: torch.Tensor, image_features: torch.Tensor) -> None:
        """Store per-dimension mean and std (floored at 1e-6) of the training features."""
        for prefix, values in (("text", text_features), ("image", image_features)):
            getattr(self, f"{prefix}_mean").copy_(values.mean(0))
            getattr(self, f"{prefix}_scale").copy_(values.std(0, unbiased=False).clamp_min(1e-6))

    def standardise_text(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.text_mean) / self.text_scale

    def standardise_image(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.image_mean) / self.image_scale

    def embed_text(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(self.standardise_text(features)), dim=-1)

    def embed_image(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_head(self.standardise_image(features)), dim=-1)

    def loss(self, text_features: torch.Tensor, image_features: torch.Tensor) -> torch.Tensor:
        """Training loss of a batch of paired tower features (row i of each is one item)."""
        text_emb, image_emb = self.embed_text(text_features), self.embed_image(image_features)
        if self.objective == "contrastive":
            return contrastive_loss(text_emb, image_emb, self.logit_scale)
        return reconstructive_loss(text_emb, image_emb, self.standardise_text(text_features),
                                   self.standardise_image(image_features), self.text_decoder, self.image_decoder)


def contrastive_loss(text_emb: torch.Tensor, image_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image->text and text->image cross-entropy over the batch.

    ``logit_scale`` is the log of the inverse temperature, clamped to ``[0, log 100]``.

    Example:
        >>> eye = torch.eye(2)
        >>> round(contrastive_loss(eye, eye, torch.tensor(0.0)).item(), 5)  # log(1 + 1/e)
        0.31326
    """
    scale = logit_scale.clamp(0.0, MAX_LOGIT_SCALE).exp()
    logits = scale * image_emb @ text_emb.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def reconstructive_loss(text_emb, image_emb, text_target, image_target, text_decoder, image_decoder) -> torch.Tensor:
    """Mean squared error of rebuilding both targets from each shared embedding (4 terms, averaged).

    Example:
        >>> dec = nn.Identity()
        >>> reconstructive_loss(*(torch.ones(1, 2),) * 4, dec, dec).item()
        0.0
    """
    terms = [F.mse_loss(decoder(embedding), target)
             for decoder, target in ((text_decoder, text_target), (image_decoder, image_target))
             for embedding in (text_emb, image_emb)]
    return torch.stack(terms).mean()


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(directory: str | Path, heads: AlignmentHeads, optimizer_state: dict, meta: dict,
                    text_adapter: dict | None = None) -> None:
    """Write epoch-named heads (safetensors) and optimizer files, then ``alignment.json`` last.

    ``text_adapter``: the trainable tensors of an adapted text tower (only those), saved
    beside the heads and named in the JSON as ``text_adapter_file``.

    Each file is written atomically and the JSON (which names the files) is the commit
    point, so a crash mid-save leaves the previous checkpoint intact.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"epoch{meta['epoch']:04d}"
    heads_file, optimizer_file = f"heads-{tag}.safetensors", f"optimizer-{tag}.pt"
    with atomic_path(directory / heads_file) as tmp:
        save_file({k: v.detach().contiguous() for k, v in heads.state_dict().items()}, str(tmp))
    with atomic_path(directory / optimizer_file) as tmp:
        torch.save(optimizer_state, tmp)
    files = {"heads_file": heads_file, "optimizer_file": optimizer_file}
    if text_adapter is not None:
        files["text_adapter_file"] = f"text-adapter-{tag}.safetensors"
        with atomic_path(directory / files["text_adapter_file"]) as tmp:
            save_file({k: v.detach().contiguous() for k, v in text_adapter.items()}, str(tmp))
    atomic_write_json(directory / "alignment.json", {"format": CHECKPOINT_FORMAT, **meta, **files})
    for old in [*directory.glob("heads-epoch*.safetensors"), *directory.glob("optimizer-epoch*.pt"),
                *directory.glob("text-adapter-epoch*.safetensors")]:
        if old.name not in files.values():
            old.unlink(missing_ok=True)


def checkpoint_dir(path: str | Path) -> Path:
    """The folder holding ``alignment.json``: ``path`` itself or its ``checkpoint/`` subfolder."""
    path = Path(path)
    for candidate in (path, path / "checkpoint"):
        if (candidate / "alignment.json").is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no alignment checkpoint (expected alignment.json here or in checkpoint/)")


def read_checkpoint(path: str | Path) -> tuple[dict, dict, Path]:
    """``(meta, heads state dict, folder)`` of a checkpoint folder; errors name the file."""
    import json

    from safetensors.torch import load_file

    folder = checkpoint_dir(path)
    meta = json.loads((folder / "alignment.json").read_text(encoding="utf-8"))
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{folder / 'alignment.json'}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    heads_path = folder / meta["heads_file"]
    if not heads_path.is_file():
        raise FileNotFoundError(f"{folder / 'alignment.json'} names {heads_path.name}, which is missing")
    return meta, load_file(str(heads_path)), folder


def build_heads(config: dict) -> AlignmentHeads:
    """Heads of the architecture recorded in a checkpoint's ``config``."""
    return AlignmentHeads(text_dim=config["text_dim"], image_dim=config["image_dim"],
                          shared_dim=config["shared_dim"], head=config["head"], objective=config["objective"])


def create_towers(text_spec: str, image_spec: str, text_template: str | None):
    """The two tower encoders from registry specs (the template goes to the text tower)."""
    text_options = {} if text_template is None else {"template": text_template}
    text_tower, image_tower = create_encoder(text_spec, **text_options), create_encoder(image_spec)
    for tower, modality, spec in ((text_tower, "text", text_spec), (image_tower, "image", image_spec)):
        if tower.modality != modality:
            raise ValueError(f"{spec!r} is a {tower.modality!r} encoder; the {modality} tower needs a {modality} encoder")
    return text_tower, image_tower


# ---------------------------------------------------------------------------- the encoder
class AlignEncoder(Encoder):
    """A trained alignment checkpoint as an item encoder (spec ``align:<checkpoint-dir>``).

    Content per item is ``(text, image path)`` as read by the two towers; the vector is the
    mean of the normalised text and image embeddings where both exist, either one where
    only one does (``view="text"``/``"image"`` restricts to one modality).

    Example:
        >>> encoder = create_encoder("align:runs/align-ml100k", view="both")  # doctest: +SKIP
        >>> encoder.encode(catalog).features.shape  # doctest: +SKIP
        (1682, 256)
    """

    modality = "multimodal"
    name = "align"

    def __init__(self, checkpoint: str | Path, *, view: str = "both", feature_store: str | Path | None = None) -> None:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        self.meta, state, self.folder = read_checkpoint(checkpoint)
        config = self.meta["config"]
        self.view, self.checkpoint_config = view, config
        self.heads = build_heads(config)
        self.heads.load_state_dict(state)
        self.heads.eval()
        self.text_tower, self.image_tower = create_towers(
            config["text_encoder"], config["image_encoder"], config.get("text_template"))
        for role, tower in (("text", self.text_tower), ("image", self.image_tower)):
            recorded = self.meta["towers"][role]["weights_hash"]
            if tower.weights_hash() != recorded:
                raise ValueError(f"{self.folder / 'alignment.json'}: trained with {role} tower {config[f'{role}_encoder']!r}"
                                 f" weights {recorded[:16]}, but the installed weights hash to {tower.weights_hash()[:16]}")
        from prismrec.adapt.finetune import adapted_text_encoder

        # a checkpoint trained with an adapted text tower restores it (its id hashes the adapter)
        self.text_tower = adapted_text_encoder(self.text_tower, self.meta, self.folder,
                                               feature_store=feature_store) or self.text_tower
        self.dim = config["shared_dim"]
        self._hash: str | None = None
        # when given, the towers' features are read from (and added to) this store
        self._store = None if feature_store is None else FeatureStore(feature_store)

    def weights_hash(self) -> str:
        if self._hash is None:
            digest = hashlib.sha256()
            for part in (self.text_tower.weights_hash(), self.image_tower.weights_hash(),
                         hash_state_dict(self.heads.state_dict())):
                digest.update(part.encode())
            self._hash = digest.hexdigest()
        return self._hash

    def config(self) -> dict:
        keys = ("text_encoder", "image_encoder", "text_template", "objective", "shared_dim", "head")
        return {"view": self.view, **{key: self.checkpoint_config.get(key) for key in keys}}

    def contents(self, catalog) -> list:
        texts = self.text_tower.contents(catalog) if self.view != "image" else [None] * len(catalog)
        images = self.image_tower.contents(catalog) if self.view != "text" else [None] * len(catalog)
        return [None if text is None and image is None else (text, image) for text, image in zip(texts, images)]

    def content_hash(self, content) -> str:
        text, image = content
        parts = [self.text_tower.content_hash(text) if text is not None else "-",
                 self.image_tower.content_hash(image) if image is not None else "-"]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def encode_batch(self, contents: list) -> tuple[np.ndarray, list[str | None]]:
        n = len(contents)
        total = torch.zeros(n, self.dim)
        count = torch.zeros(n, 1)
        errors: list[list[str]] = [[] for _ in range(n)]
        for position, tower, embed in ((0, self.text_tower, self.heads.embed_text),
                                       (1, self.image_tower, self.heads.embed_image)):
            rows = [i for i, content in enumerate(contents) if content[position] is not None]
            if not rows:
                continue
            vectors, row_errors = self._tower_batch(tower, [contents[i][position] for i in rows])
            good = [j for j, error in enumerate(row_errors) if error is None]
            for j, error in enumerate(row_errors):
                if error is not None:
                    errors[rows[j]].append(f"{tower.modality}: {error}")
            if good:
                with torch.no_grad():
                    embedded = embed(torch.as_tensor(np.asarray(vectors)[good], dtype=torch.float32))
                index = torch.tensor([rows[j] for j in good])
                total[index] += embedded
                count[index] += 1
        features = (total / count.clamp_min(1)).numpy().astype(np.float32)
        messages = [None if count[i] > 0 else "; ".join(errors[i]) or "no usable content" for i in range(n)]
        return features, messages

    def _tower_batch(self, tower: Encoder, items: list):
        if self._store is None:
            return tower.encode_batch(items)
        return cached_encode_batch(tower, self._store, items)


def _align_factory(argument: str | None, *, view: str = "both", feature_store: str | None = None) -> AlignEncoder:
    if not argument:
        raise ValueError("the align encoder needs a checkpoint folder: 'align:<checkpoint-dir>' "
                         "(train one with prismrec.encoders.align_train.train_alignment)")
    return AlignEncoder(argument, view=view, feature_store=feature_store)


def _adapted_text_factory(argument: str | None, *, feature_store: str | None = None):
    from prismrec.adapt.finetune import adapted_text_from_checkpoint  # here, not at import: no import cycle

    return adapted_text_from_checkpoint(argument, feature_store=feature_store)


register_encoder("align", _align_factory)
register_encoder("adapted-text", _adapted_text_factory)
