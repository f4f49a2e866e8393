"""Feature store: caching by (encoder id, content hash), failures, resume after kill -9, atomicity.

The encoders here are small but real: a character-trigram text encoder with a seeded
linear layer (its id hashes the layer's weights) and a pixel encoder that opens images
with PIL, so corrupt/truncated/missing files fail the way real ones do.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, UnidentifiedImageError

from prismrec.data.catalog import ItemCatalog
from prismrec.encoders.base import Encoder, hash_state_dict
from prismrec.encoders.shards import ShardTable, content_keys
from prismrec.encoders.store import EncodeReport, FeatureStore, encode_catalog

N_BUCKETS = 32


def trigram_counts(text: str) -> np.ndarray:
    """Counts of character trigrams hashed (md5, stable across runs) into N_BUCKETS buckets."""
    counts = np.zeros(N_BUCKETS, dtype=np.float32)
    padded = f"  {text.lower()}  "
    for start in range(len(padded) - 2):
        counts[int(hashlib.md5(padded[start:start + 3].encode()).hexdigest(), 16) % N_BUCKETS] += 1
    return counts


class CountingEncoder(Encoder):
    """Records every batch it is asked to encode."""

    batches: list[list]

    @property
    def n_encoded(self) -> int:
        return sum(len(batch) for batch in self.batches)


class TrigramTextEncoder(CountingEncoder):
    """Trigram counts through a seeded linear layer; records every batch it encodes."""

    modality, name, dim = "text", "test:trigram", 8

    def __init__(self, seed: int = 0, delay: float = 0.0) -> None:
        torch.manual_seed(seed)
        self.layer = torch.nn.Linear(N_BUCKETS, self.dim)
        self.delay = delay  # seconds per batch (to be killed mid-run); not part of the id
        self.batches = []

    def contents(self, catalog):
        return catalog.compose_text("{title}")

    def weights_hash(self) -> str:
        return hash_state_dict(self.layer.state_dict())

    def forward(self, texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return self.layer(torch.from_numpy(np.stack([trigram_counts(t) for t in texts]))).numpy()

    def encode_batch(self, contents):
        self.batches.append(list(contents))
        time.sleep(self.delay)
        return self.forward(contents), [None] * len(contents)


class PixelImageEncoder(CountingEncoder):
    """An image as its 2x2 RGB thumbnail scaled to [0, 1] (12 numbers); opens files with PIL."""

    modality, name, dim = "image", "test:pixels", 12

    def __init__(self) -> None:
        self.batches = []

    def contents(self, catalog):
        return list(catalog.media_paths("image"))

    def weights_hash(self) -> str:
        return hashlib.sha256(b"pixels-2x2-bilinear").hexdigest()

    def encode_batch(self, contents):
        self.batches.append(list(contents))
        vectors, errors = np.zeros((len(contents), self.dim), np.float32), []
        for row, path in enumerate(contents):
            try:
                with Image.open(path) as image:
                    small = image.convert("RGB").resize((2, 2), Image.BILINEAR)
                vectors[row] = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
                errors.append(None)
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        return vectors, errors


def text_catalog(n: int = 12, missing: tuple[int, ...] = ()) -> ItemCatalog:
    titles = [None if i in missing else f"Movie number {i} ({1990 + i})" for i in range(n)]
    return ItemCatalog(item_ids=[f"m{i}" for i in range(n)], text={"title": titles})


def run(encoder, catalog, store, batch_size=4):
    return encode_catalog(encoder, catalog, store, batch_size=batch_size, progress=False)


# ----------------------------------------------------------------------------- caching


def test_first_run_encodes_everything_and_second_run_reads_it_back(tmp_path):
    catalog = text_catalog(10, missing=(3,))
    encoder = TrigramTextEncoder()
    first = run(encoder, catalog, FeatureStore(tmp_path))
    assert encoder.n_encoded == 9 and len(encoder.batches) == 3  # 9 texts in batches of 4
    expected = encoder.forward([t for t in catalog.compose_text("{title}") if t is not None])
    np.testing.assert_allclose(np.delete(first.features, 3, axis=0), expected, rtol=1e-6, atol=1e-6)
    assert first.features.dtype == np.float32 and first.features.shape == (10, 8)
    assert first.mask.tolist() == [i != 3 for i in range(10)] and not first.features[3].any()
    assert (first.report.n_items, first.report.n_cached, first.report.n_encoded) == (10, 0, 9)
    assert first.report.n_missing_content == 1 and first.report.n_failed == 0

    encoder.batches.clear()
    second = run(encoder, catalog, FeatureStore(tmp_path))  # a new store object: read from disk
    assert encoder.n_encoded == 0
    assert (second.report.n_cached, second.report.n_encoded) == (9, 0)
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.mask, first.mask)


def test_changing_one_title_re_encodes_exactly_that_item(tmp_path):
    catalog = text_catalog(10)
    encoder = TrigramTextEncoder()
    before = run(encoder, catalog, FeatureStore(tmp_path))
    titles = list(catalog.text["title"])
    titles[6] = "A completely different title"
    changed = ItemCatalog(item_ids=catalog.item_ids, text={"title": titles})
    encoder.batches.clear()
    after = run(encoder, changed, FeatureStore(tmp_path))
    assert encoder.batches == [["A completely different title"]]
    assert (after.report.n_cached, after.report.n_encoded) == (9, 1)
    np.testing.assert_allclose(after.features[6], encoder.forward(["A completely different title"])[0], atol=1e-6)
    np.testing.assert_array_equal(np.delete(after.features, 6, 0), np.delete(before.features, 6, 0))


def test_identical_contents_are_encoded_once_and_served_to_every_item(tmp_path):
    catalog = ItemCatalog(item_ids=["a", "b", "c"], text={"title": ["Heat", "Alien", "Heat"]})
    encoder = TrigramTextEncoder()
    result = run(encoder, catalog, FeatureStore(tmp_path))
    assert encoder.batches == [["Heat", "Alien"]]
    np.testing.assert_array_equal(result.features[0], result.features[2])
    assert result.report.n_encoded == 3 and result.mask.all()


def test_other_weights_mean_another_encoder_id_and_a_full_re_encode(tmp_path):
    catalog = text_catalog(6)
    store = FeatureStore(tmp_path)
    run(TrigramTextEncoder(seed=0), catalog, store)
    other = TrigramTextEncoder(seed=1)
    assert other.id != TrigramTextEncoder(seed=0).id  # the id carries the weights' hash
    result = run(other, catalog, store)
    assert other.n_encoded == 6 and result.report.n_cached == 0
    np.testing.assert_allclose(result.features, other.forward(catalog.compose_text("{title}")), atol=1e-6)
    assert sorted(store.encoder_ids()) == sorted([other.id, TrigramTextEncoder(seed=0).id])
    back = TrigramTextEncoder(seed=0)  # the first encoder's features are still there
    assert run(back, catalog, store).report.n_cached == 6 and back.n_encoded == 0


# ----------------------------------------------------------------------------- bad files


def write_image(path: Path, color: tuple[int, int, int]) -> Path:
    Image.new("RGB", (8, 8), color).save(path, format="JPEG", quality=95)
    return path


@pytest.fixture
def image_catalog(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    red, blue = write_image(folder / "red.jpg", (255, 0, 0)), write_image(folder / "blue.jpg", (0, 0, 255))
    (folder / "corrupt.jpg").write_bytes(b"this is not a JPEG at all" * 10)
    big = folder / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(big, "JPEG")
    (folder / "truncated.jpg").write_bytes(big.read_bytes()[:400])
    paths = [red, folder / "corrupt.jpg", None, folder / "truncated.jpg", folder / "absent.jpg", blue]
    ids = ["red", "corrupt", "no-image", "truncated", "absent", "blue"]
    return ItemCatalog(item_ids=ids, media={"image": [None if p is None else str(p) for p in paths]})


def test_corrupt_truncated_and_missing_files_are_reported_masked_and_cached(tmp_path, image_catalog):
    encoder = PixelImageEncoder()
    result = run(encoder, image_catalog, FeatureStore(tmp_path / "store"))
    report = result.report
    # each item is counted once: 2 encoded + 1 without content + 3 failed == 6
    assert (report.n_items, report.n_missing_content, report.n_failed, report.n_encoded) == (6, 1, 3, 2)
    assert report.n_cached + report.n_encoded + report.n_missing_content + report.n_failed == report.n_items
    assert result.mask.tolist() == [True, False, False, False, False, True]
    assert [f.item_id for f in report.failures] == ["corrupt", "truncated", "absent"]
    messages = {f.item_id: f.message for f in report.failures}
    assert "UnidentifiedImageError" in messages["corrupt"] and "truncated" in messages["truncated"].lower()
    assert "FileNotFoundError" in messages["absent"]
    np.testing.assert_allclose(result.features[0], [1, 0, 0] * 4, atol=0.02)  # red, JPEG-rounded
    np.testing.assert_allclose(result.features[5], [0, 0, 1] * 4, atol=0.02)
    assert not result.features[~result.mask].any()
    assert sorted(result.errors) == [1, 3, 4]
    printed = str(report)
    assert "3 failed" in printed and "item corrupt" in printed and "item absent" in printed

    encoder.batches.clear()  # failures are cached: nothing is retried while the bytes stay the same
    again = run(encoder, image_catalog, FeatureStore(tmp_path / "store"))
    assert encoder.n_encoded == 0 and again.report.n_failed == 3 and again.report.n_cached == 2

    write_image(Path(image_catalog.media["image"][1]), (0, 255, 0))  # repair the corrupt file
    fixed = run(encoder, image_catalog, FeatureStore(tmp_path / "store"))
    assert encoder.batches == [[image_catalog.media["image"][1]]]
    assert fixed.mask.tolist() == [True, True, False, False, False, True] and fixed.report.n_failed == 2
    np.testing.assert_allclose(fixed.features[1], [0, 1, 0] * 4, atol=0.02)


def test_failures_name_the_items_file_line(tmp_path, image_catalog):
    lines = [2, 3, 5, 6, 7, 9]  # as read from an items file with a blank line and a skipped row
    catalog = ItemCatalog(image_catalog.item_ids, media=image_catalog.media, source="items.csv", lines=lines)
    printed = str(run(PixelImageEncoder(), catalog, FeatureStore(tmp_path / "store")).report)
    assert "item corrupt (items.csv line 3," in printed and "item absent (items.csv line 7," in printed


class FlakyEncoder(TrigramTextEncoder):
    """Raises on one title (an encoder bug or a transient fault) instead of reporting it."""

    def encode_batch(self, contents):
        if "poison" in contents:
            raise RuntimeError("boom")
        return super().encode_batch(contents)


def test_an_encoder_that_raises_loses_one_item_not_the_run_and_is_retried_next_time(tmp_path):
    catalog = ItemCatalog(item_ids=["a", "b", "c"], text={"title": ["Heat", "poison", "Alien"]})
    encoder = FlakyEncoder()
    result = run(encoder, catalog, FeatureStore(tmp_path))
    assert result.mask.tolist() == [True, False, True] and result.errors == {1: "RuntimeError: boom"}
    assert result.report.failures[0].cached is False and "retried next run" in str(result.report)
    encoder.batches.clear()
    run(encoder, catalog, FeatureStore(tmp_path))
    assert encoder.batches == []  # "poison" was retried (raised again); the others came from disk


def test_an_encoder_returning_the_wrong_shape_is_a_clear_error(tmp_path):
    class Broken(TrigramTextEncoder):
        def encode_batch(self, contents):
            return np.zeros((len(contents), 3), np.float32), [None] * len(contents)

    with pytest.raises(ValueError, match=r"encode_batch returned features \(2, 3\).*expected \(2, 8\)"):
        run(Broken(), text_catalog(2), FeatureStore(tmp_path))


# ----------------------------------------------------------------------------- disk layout


def test_shard_table_lookup_across_shards_with_shared_prefixes_and_duplicates():
    def key(prefix: bytes, last: int) -> bytes:
        return prefix + bytes(31 - len(prefix)) + bytes([last])

    same = b"\x07" * 8  # three keys share their first 8 bytes (the integer the search runs on)
    first = np.array([key(same, 3), key(b"\x01", 0), key(same, 1)], dtype="S32")
    second = np.array([key(same, 2), key(b"\x01", 0)], dtype="S32")  # re-stores key(b"\x01", 0)
    table = ShardTable(dim=2)
    table.add(first, np.array([[3, 3], [0, 0], [1, 1]], np.float32), np.array([True, True, False]),
              np.array([None, None, "bad"], dtype=object))
    table.add(second, np.array([[2, 2], [9, 9]], np.float32), np.ones(2, bool), np.full(2, None, dtype=object))
    assert len(table) == 4
    wanted = np.array([key(same, 2), key(same, 3), key(b"\x01", 0), key(same, 9), key(same, 1)], dtype="S32")
    rows = table.find(wanted)
    assert rows[3] == -1 and (rows[[0, 1, 2, 4]] >= 0).all()
    np.testing.assert_array_equal(table.features_at(rows[[0, 1, 2]]), [[2, 2], [3, 3], [9, 9]])  # last wins
    assert table.ok_at(rows[[0, 4]]).tolist() == [True, False] and table.message_at(rows[4]) == "bad"
    keys, features, ok, messages = table.arrays()
    assert keys.tolist() == sorted(keys.tolist()) and features[:, 0].tolist() == [9, 1, 2, 3]
    assert messages.tolist() == [None, "bad", None, None]


def test_reading_a_store_with_another_dimension_is_a_clear_error(tmp_path):
    encoder = TrigramTextEncoder()
    run(encoder, text_catalog(3), FeatureStore(tmp_path))
    with pytest.raises(ValueError, match="stored with dimension 8, but the encoder now reports 5"):
        FeatureStore(tmp_path).table(encoder.id, 5)


def test_content_keys_use_hex_hashes_as_they_are_and_hash_other_strings():
    digest = hashlib.sha256(b"poster bytes").hexdigest()
    keys = content_keys([digest, "missing-file:abc"])
    assert keys[0] == bytes.fromhex(digest) and keys[1] == hashlib.sha256(b"missing-file:abc").digest()


def test_shards_are_compacted_and_no_temporary_files_are_left(tmp_path):
    encoder = TrigramTextEncoder()
    store = FeatureStore(tmp_path)
    run(encoder, text_catalog(20), store, batch_size=3)
    folder = store.folder(encoder.id)
    assert len(store.shard_paths(encoder.id)) == 1  # 7 batch shards merged into one
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("shard-")) == [".encoding.lock",
                                                                                          "meta.json"]
    run(encoder, text_catalog(22), store, batch_size=3)  # 2 new items: a small second shard
    assert len(store.shard_paths(encoder.id)) == 2
    run(encoder, text_catalog(25), store, batch_size=1)  # 3 shards of 1 merged with the small one
    assert len(store.shard_paths(encoder.id)) == 2
    assert len(FeatureStore(tmp_path).table(encoder.id, 8)) == 25


def test_a_shard_truncated_on_disk_is_set_aside_with_a_warning_and_re_encoded(tmp_path):
    catalog = text_catalog(10)
    encoder = TrigramTextEncoder()
    reference = run(encoder, catalog, FeatureStore(tmp_path), batch_size=4)
    titles = list(catalog.text["title"])
    titles[0], titles[1] = "New title zero", "New title one"
    run(encoder, ItemCatalog(item_ids=catalog.item_ids, text={"title": titles}), FeatureStore(tmp_path))
    big, small = sorted(FeatureStore(tmp_path).shard_paths(encoder.id), key=lambda p: -p.stat().st_size)
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])  # cut the 10-item shard in half
    encoder.batches.clear()
    with pytest.warns(RuntimeWarning, match="damaged feature shard"):
        result = run(encoder, catalog, FeatureStore(tmp_path))
    assert encoder.n_encoded == 10 and result.report.n_damaged_shards == 1
    assert "damaged shard" in str(result.report)
    np.testing.assert_allclose(result.features, reference.features, atol=1e-6)
    assert big.with_name(big.name + ".corrupt").exists() and not big.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the damaged shard is not read (nor warned about) again
        assert run(encoder, catalog, FeatureStore(tmp_path)).report.n_cached == 10


def test_a_reader_never_sees_a_half_written_shard(tmp_path):
    writer_encoder = TrigramTextEncoder(delay=0.01)
    catalog = text_catalog(60)
    writer = threading.Thread(target=run, args=(writer_encoder, catalog, FeatureStore(tmp_path), 2))
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a damaged shard would warn, i.e. raise here
        writer.start()
        while writer.is_alive():
            seen.append(len(FeatureStore(tmp_path).table(writer_encoder.id, 8)))
        writer.join()
    assert len(FeatureStore(tmp_path).table(writer_encoder.id, 8)) == 60
    assert len(seen) > 3 and all(n % 2 == 0 or n == 60 for n in seen)  # whole batches of 2 only


# ----------------------------------------------------------------------------- resume


KILL_SCRIPT = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("store_test_module", {test_file!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
encoder = module.TrigramTextEncoder(delay=0.25)
module.encode_catalog(encoder, module.text_catalog(40), module.FeatureStore({root!r}),
                      batch_size=4, progress=False)
"""


def test_a_run_killed_with_sigkill_resumes_without_redoing_finished_batches(tmp_path):
    root = tmp_path / "store"
    script = tmp_path / "encode.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT.format(test_file=__file__, root=str(root))))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    process = subprocess.Popen([sys.executable, str(script)], env=env)
    folder = FeatureStore(root).folder(TrigramTextEncoder().id)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(folder.glob("shard-*.safetensors"))) >= 3:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, "the encoding run ended before it could be killed"

    done = len(FeatureStore(root).table(TrigramTextEncoder().id, 8))
    assert 12 <= done < 40 and done % 4 == 0  # whole batches only
    encoder = TrigramTextEncoder()
    resumed = run(encoder, text_catalog(40), FeatureStore(root))
    assert encoder.n_encoded == 40 - done  # finished batches are not computed again
    assert (resumed.report.n_cached, resumed.report.n_encoded) == (done, 40 - done)
    scratch = run(TrigramTextEncoder(), text_catalog(40), FeatureStore(tmp_path / "scratch"))
    np.testing.assert_allclose(resumed.features, scratch.features, rtol=1e-6, atol=1e-6)
    assert resumed.mask.all()


def test_report_is_printable_and_progress_bar_can_be_on(tmp_path, capsys):
    result = encode_catalog(TrigramTextEncoder(), text_catalog(5, missing=(0,)), tmp_path, progress=True)
    assert isinstance(result.report, EncodeReport)
    assert str(result.report).startswith(f"{result.encoder_id}: 5 items: 0 from the cache, 4 encoded, "
                                         "1 without content, 0 failed")
    assert "5 items" in capsys.readouterr().err


class LazyDimEncoder(TrigramTextEncoder):
    """Counts how often ``dim`` is asked for: real encoders load their model to answer it."""

    dim_reads = 0

    @property
    def dim(self):
        type(self).dim_reads += 1
        return 8


def test_a_fully_cached_run_never_asks_the_encoder_for_its_dimension(tmp_path):
    catalog = text_catalog(6)
    first = run(LazyDimEncoder(), catalog, FeatureStore(tmp_path))
    encoder = LazyDimEncoder()  # its constructor reads dim to build its layer
    LazyDimEncoder.dim_reads = 0
    second = run(encoder, catalog, FeatureStore(tmp_path))
    assert LazyDimEncoder.dim_reads == 0
    assert second.report.n_cached == 6 and np.array_equal(second.features, first.features)


def test_cached_encode_batch_encodes_each_content_once_and_matches_the_encoder(tmp_path):
    from prismrec.encoders.store import cached_encode_batch

    encoder, store = TrigramTextEncoder(), FeatureStore(tmp_path)
    texts = ["heat", "alien", "heat 2"]
    first, errors = cached_encode_batch(encoder, store, texts)
    again, _ = cached_encode_batch(encoder, store, ["alien", "heat", "brazil"])
    direct, _ = TrigramTextEncoder().encode_batch(["alien", "heat", "brazil"])
    assert errors == [None, None, None]
    assert encoder.n_encoded == 4  # "alien" and "heat" came from the store the second time
    np.testing.assert_allclose(again, direct, rtol=1e-6)
    np.testing.assert_allclose(again[1], first[0], rtol=1e-6)


def test_two_runs_on_one_store_encode_each_item_once(tmp_path):
    """The second of two concurrent runs waits for the first and reads its vectors."""
    import threading

    catalog = text_catalog(12)
    first, second = TrigramTextEncoder(delay=0.05), TrigramTextEncoder(delay=0.05)  # same weights, same id
    results = {}
    threads = [threading.Thread(target=lambda name, enc: results.__setitem__(name, run(enc, catalog,
                                                                                       FeatureStore(tmp_path))),
                                args=(name, enc)) for name, enc in (("first", first), ("second", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first.n_encoded + second.n_encoded == 12  # without the lock: 24, each run encodes everything
    assert sorted(r.report.n_cached for r in results.values()) == [0, 12]
    np.testing.assert_allclose(results["first"].features, results["second"].features, rtol=1e-6, atol=1e-6)
    assert not list(tmp_path.glob("*/*.tmp"))
