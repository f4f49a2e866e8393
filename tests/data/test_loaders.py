"""Every loader on tiny hand-written files (exact counts and values), then on the real data."""
from __future__ import annotations

import gzip
import json
import warnings

import numpy as np
import pytest
from conftest import shared_data

from prismrec.data.loaders import (
    LOADERS, DataWarning, load_amazon_review_texts, load_amazon_reviews, load_atomic_files, load_dataset,
    load_generic, load_mmrec, load_movielens_100k, load_p5_sequences, load_recbole_ml100k, load_split_files,
    load_tmdb_items, mmrec_split)
from prismrec.data.loaders.movielens import GENRES
from prismrec.data.splits import leave_one_out

TMDB_GENRES = ["genre_unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "FilmNoir", "Horror", "Musical", "Mystery", "Romance", "SciFi", "Thriller",
               "War", "Western"]


def flags(*genres: str) -> list[str]:
    return ["1" if g in genres else "0" for g in GENRES]


def u_item_line(item_id: int, title: str, date: str, *genres: str) -> str:
    return "|".join([str(item_id), title, date, "", "http://imdb/x", *flags(*genres)])


def write_movielens(folder, *, posters=(), tmdb_rows=None):
    folder.mkdir(exist_ok=True)
    (folder / "u.data").write_text("1\t10\t5\t100\n1\t20\t3\t200\n2\t10\t4\t150\n3\t30\t2\t50\n")
    lines = [u_item_line(10, "Heat (1995)", "15-Dec-1995", "Action", "Crime", "Thriller"),
             u_item_line(20, "Misérables, Les (1995)", "01-Jan-1995", "Drama", "Musical"),
             u_item_line(30, "unknown", "", "unknown"),
             u_item_line(40, "Never Rated (1990)", "01-Jan-1990", "Comedy")]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    if posters:
        (folder / "posters").mkdir()
        for item in posters:
            (folder / "posters" / f"{item}.jpg").write_bytes(b"\xff\xd8fake")
    if tmdb_rows is not None:
        header = ["movie_id", "title", *TMDB_GENRES, "year", "overview", "original_language", "runtime",
                  "vote_average", "vote_count", "cleaned_title"]
        body = [",".join(header)] + [",".join(row) for row in tmdb_rows]
        (folder / "items_tmdb.csv").write_text("\n".join(body) + "\n", encoding="utf-8")
    return folder


def tmdb_row(item_id, title, year, overview, *genres):
    genre_flags = ["1" if g in genres else "0" for g in TMDB_GENRES]
    return [str(item_id), title, *genre_flags, year, overview, "en", "100.0", "7.0", "10.0", title]


def messages(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


# ----------------------------------------------------------------------------- MovieLens + TMDB
def test_movielens_tiny_counts_titles_and_genres(tmp_path):
    folder = write_movielens(tmp_path / "ml")
    with pytest.warns(DataWarning, match=r"1 catalog items have no interaction and are left out: 40"):
        data = load_movielens_100k(folder)
    inter = data.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (3, 3, 4)
    assert inter.users.raw_ids.tolist() == ["1", "2", "3"]
    assert inter.items.raw_ids.tolist() == ["10", "20", "30"]
    assert inter.to_frame().query("user == '1' and item == '20'")[["timestamp", "rating"]].values.tolist() == [[200, 3]]
    catalog = data.catalog
    assert catalog.item_ids.tolist() == ["10", "20", "30"]
    assert catalog.text["title"].tolist() == ["Heat (1995)", "Misérables, Les (1995)", "unknown"]
    assert catalog.text["genres"].tolist() == ["Action, Crime, Thriller", "Drama, Musical", "unknown"]
    assert catalog.text["year"].tolist() == ["1995", "1995", None]
    assert catalog.media == {}


def test_movielens_rating_threshold_reports_lost_users_and_items(tmp_path):
    folder = write_movielens(tmp_path / "ml")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_movielens_100k(folder, rating_threshold=4, with_catalog=False)
    assert data.interactions.users.raw_ids.tolist() == ["1", "2"]
    assert data.interactions.items.raw_ids.tolist() == ["10"]
    assert data.catalog is None
    found = messages(record)
    assert any("1 users have no rating >= 4 and are left out: 3" in m for m in found), found
    assert any("2 items have no rating >= 4 and are left out: 20, 30" in m for m in found), found


def test_movielens_genre_names_from_u_genre(tmp_path):
    folder = write_movielens(tmp_path / "ml")
    names = [f"G{i}" for i in range(19)]
    (folder / "u.genre").write_text("".join(f"{n}|{i}\n" for i, n in enumerate(names)) + "\n")
    with pytest.warns(DataWarning):
        data = load_movielens_100k(folder)
    assert data.catalog.text["genres"][0] == "G1, G6, G16"  # Action, Crime, Thriller positions


def test_movielens_enriched_with_tmdb_and_posters(tmp_path):
    rows = [tmdb_row(10, "Heat (1995)", "1995.0", "", "Action"),
            tmdb_row(10, "Heat again", "1995.0", "A heist goes wrong.", "Crime"),
            tmdb_row(20, "Les Miserables", "", "Redemption.", "Drama")]
    folder = write_movielens(tmp_path / "ml", posters=[10, 40], tmdb_rows=rows)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_movielens_100k(folder)
    catalog = data.catalog
    # u.item stays the source of titles; TMDB adds the plot (first non-empty overview wins)
    assert catalog.text["title"][0] == "Heat (1995)"
    assert catalog.text["plot"].tolist() == ["A heist goes wrong.", "Redemption.", None]
    images = catalog.media["image"]
    assert images[0] == str(folder / "posters" / "10.jpg") and images[1] is None and images[2] is None
    assert catalog.summary()["image"] == 1
    found = messages(record)
    assert any("1 repeated movie_id rows merged into 2 movies" in m and "first lines: 3" in m for m in found), found
    assert any("1 items have no image file" in m and ": 20" in m for m in found), found


def test_tmdb_items_merge_first_non_empty_value(tmp_path):
    rows = [tmdb_row(5, "Five", "", "", "SciFi", "FilmNoir"),
            tmdb_row(5, "Five (dup)", "1999.0", "Plot of five.", "Drama"),
            tmdb_row(6, "Six", "2001.0", "Plot of six.")]
    folder = write_movielens(tmp_path / "ml", posters=[6], tmdb_rows=rows)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        catalog = load_tmdb_items(folder / "items_tmdb.csv", folder / "posters")
    found = messages(record)
    assert any("1 repeated movie_id rows merged into 2 movies" in m for m in found), found
    assert any("1 items have no image file (recorded as missing): 5" in m for m in found), found
    assert catalog.item_ids.tolist() == ["5", "6"]
    assert catalog.text["title"].tolist() == ["Five", "Six"]
    assert catalog.text["year"].tolist() == ["1999", "2001"]
    assert catalog.text["plot"].tolist() == ["Plot of five.", "Plot of six."]
    assert catalog.text["genres"].tolist() == ["Film-Noir, Sci-Fi", None]
    assert catalog.media["image"].tolist() == [None, str(folder / "posters" / "6.jpg")]


# ----------------------------------------------------------------------------- RecBole atomic files
def test_atomic_files_tiny(tmp_path):
    (tmp_path / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                        "u1\ti1\t4\t10\nu1\ti2\t2\t5\nu2\ti2\t5\t7\n")
    (tmp_path / "toy.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                       "i1\tThe Film\t1999\tDrama Sci-Fi\ni2\tOther\t2001\tComedy\n")
    data = load_atomic_files(tmp_path, "toy", rating_threshold=3)
    inter = data.interactions
    assert inter.users.raw_ids.tolist() == ["u1", "u2"] and inter.items.raw_ids.tolist() == ["i1", "i2"]
    assert sorted(map(tuple, inter.to_frame()[["user", "item"]].values.tolist())) == [("u1", "i1"), ("u2", "i2")]
    text = {name: values.tolist() for name, values in data.catalog.text.items()}
    assert text == {"title": ["The Film", "Other"], "year": ["1999", "2001"], "genres": ["Drama, Sci-Fi", "Comedy"]}


def test_recbole_ml100k_from_installed_package():
    pytest.importorskip("recbole")
    data = load_recbole_ml100k()
    inter = data.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (943, 1682, 100000)
    assert inter.items.raw_ids[:3].tolist() == ["1", "2", "3"]
    catalog = data.catalog
    row = inter.items.to_index(["543"])[0]
    assert catalog.text["title"][row] == "Misérables, Les"
    assert catalog.text["genres"][0] == "Animation, Children's, Comedy"
    assert catalog.text["year"][0] == "1995"
    assert load_dataset("recbole_ml100k").interactions.n_items == 1682


# ----------------------------------------------------------------------------- Amazon
def write_reviews(path):
    lines = [
        json.dumps({"reviewerID": "A", "asin": "X1", "overall": 5.0, "unixReviewTime": 100,
                    "reviewText": "Great strings.", "summary": "great"}),
        json.dumps({"reviewerID": "B", "asin": "X1", "overall": 2.0, "unixReviewTime": 50, "reviewText": "Meh",
                    "summary": "meh", "vote": "3", "style": {"Size:": "L"}, "image": ["http://i"], "verified": True}),
        str({"reviewerID": "A", "asin": "X2", "overall": 4.0, "unixReviewTime": 200, "reviewText": "Fine 'tuner'",
             "summary": "ok"}),  # python dict literal, not JSON
        json.dumps({"reviewerID": "A", "asin": "X1", "overall": 3.0, "unixReviewTime": 300, "summary": "again"}),
    ]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def test_amazon_reviews_both_formats_and_duplicates(tmp_path):
    path = tmp_path / "reviews.json.gz"
    write_reviews(path)
    with pytest.warns(DataWarning, match=r"1 repeated \(user, item\) rows merged .*first lines: 1"):
        data = load_amazon_reviews(path)
    inter = data.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (2, 2, 3)
    frame = inter.to_frame().sort_values(["user", "item"]).values.tolist()
    assert frame == [["A", "X1", 300.0, 3.0], ["A", "X2", 200.0, 4.0], ["B", "X1", 50.0, 2.0]]
    texts = load_amazon_review_texts(path)
    assert texts["summary"].tolist() == ["great", "meh", "ok", "again"]
    assert texts["text"][:3].tolist() == ["Great strings.", "Meh", "Fine 'tuner'"]
    assert texts["text"].isna().tolist() == [False, False, False, True]
    assert list(texts.columns) == ["line", "user", "item", "rating", "timestamp", "summary", "text"]


def test_amazon_meta_fills_catalog_and_missing_items_are_missing(tmp_path):
    path = tmp_path / "reviews.json.gz"
    write_reviews(path)
    meta = tmp_path / "meta.json"
    meta.write_text(str({"asin": "X1", "title": "Strings", "categories": [["Music", "Guitar"]], "brand": "Acme",
                         "imUrl": "http://img/x1.jpg", "description": "Nickel strings."}) + "\n"
                    + json.dumps({"asin": "Z9", "title": "Unrated"}) + "\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_amazon_reviews(path, meta_path=meta)
    catalog = data.catalog
    assert catalog.item_ids.tolist() == ["X1", "X2"]
    assert catalog.text["title"].tolist() == ["Strings", None]
    assert catalog.text["categories"].tolist() == ["Music, Guitar", None]
    assert catalog.text["image_url"].tolist() == ["http://img/x1.jpg", None]
    found = messages(record)
    assert any("1 interacted items have no catalog entry" in m and "X2" in m for m in found), found
    assert any("1 catalog items have no interaction" in m and "Z9" in m for m in found), found


# ----------------------------------------------------------------------------- P5
def test_p5_sequences_tiny(tmp_path):
    (tmp_path / "sequential_data.txt").write_text("1 1 2 3\n2 2 3 1 4\n")
    maps = {"user2id": {"AU": "1", "BU": "2"}, "item2id": {}, "id2user": {"1": "AU", "2": "BU"},
            "id2item": {"1": "B001", "2": "B002", "3": "B003", "4": "B004"}}
    (tmp_path / "datamaps.json").write_text(json.dumps(maps))
    data = load_p5_sequences(tmp_path)
    inter = data.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (2, 4, 7)
    assert inter.timestamps.tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert data.catalog.text["asin"].tolist() == ["B001", "B002", "B003", "B004"]
    split = leave_one_out(inter)
    test = split.test.to_frame().values.tolist()
    assert [row[:2] for row in test] == [["1", "3"], ["2", "4"]]
    assert [row[:2] for row in split.valid.to_frame().values.tolist()] == [["1", "2"], ["2", "1"]]


# ----------------------------------------------------------------------------- MMRec
def write_mmrec(folder, n_feature_rows=3):
    folder.mkdir(exist_ok=True)
    (folder / "toy.inter").write_text("userID\titemID\trating\ttimestamp\tx_label\n"
                                      "0\t2\t5\t10\t0\n0\t0\t4\t11\t0\n1\t0\t3\t12\t1\n1\t1\t5\t13\t2\n0\t1\t1\t14\t2\n")
    np.save(folder / "image_feat.npy", np.arange(n_feature_rows * 2, dtype=np.float64).reshape(n_feature_rows, 2))
    return folder


def test_mmrec_features_align_with_item_ids(tmp_path):
    folder = write_mmrec(tmp_path / "toy")
    data = load_mmrec(folder)
    assert data.interactions.items.raw_ids.tolist() == ["0", "1", "2"]
    assert data.item_features["image"].dtype == np.float32
    row = data.interactions.items.to_index(["2"])[0]
    assert data.item_features["image"][row].tolist() == [4.0, 5.0]
    assert "text" not in data.item_features
    split = mmrec_split(folder)
    pairs = {name: sorted(map(tuple, getattr(split, name).to_frame()[["user", "item"]].values.tolist()))
             for name in ("train", "valid", "test")}
    assert pairs == {"train": [("0", "0"), ("0", "2")], "valid": [("1", "0")], "test": [("0", "1"), ("1", "1")]}
    split.check_disjoint()


def test_mmrec_feature_row_mismatch_names_the_file(tmp_path):
    folder = write_mmrec(tmp_path / "toy", n_feature_rows=4)
    with pytest.raises(ValueError, match=r"image_feat\.npy: expected 3 rows .* found 4"):
        load_mmrec(folder)


# ----------------------------------------------------------------------------- generic
def test_generic_csv_items_and_images(tmp_path):
    (tmp_path / "ratings.csv").write_text("uid,iid,stars,when\nu1,007,5,2024-01-02\nu1,8,1,2024-01-01\n"
                                          "u2,8,4,2024-01-03T00:00:00\n")
    (tmp_path / "items.csv").write_text("iid,title,pic\n007,Bond,a.png\n8,Eight,\n9,Nine,c.png\n")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"png")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_generic(tmp_path / "ratings.csv", tmp_path / "items.csv", tmp_path / "img", user_col="uid",
                            item_col="iid", time_col="when", rating_col="stars", image_col="pic")
    inter = data.interactions
    assert inter.items.raw_ids.tolist() == ["007", "8"]  # ids stay text: "007" is not 7
    frame = inter.to_frame()
    assert frame.loc[frame["item"] == "8", "timestamp"].tolist() == [1704067200.0, 1704240000.0]
    assert list(data.catalog.text) == ["title"]
    assert data.catalog.text["title"].tolist() == ["Bond", "Eight"]
    assert data.catalog.media["image"].tolist() == [str(tmp_path / "img" / "a.png"), None]
    assert any("1 catalog items have no interaction" in m for m in messages(record))


def test_generic_parquet_and_images_by_item_id(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.chdir(tmp_path)  # a relative image_dir is stored as absolute paths

    pd.DataFrame({"user": ["a", "b", "b"], "item": [1, 2, 3], "t": [3.0, 1.0, 2.0]}).to_parquet(tmp_path / "i.parquet")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "1.jpg").write_bytes(b"j")
    (tmp_path / "img" / "3.webp").write_bytes(b"w")
    with pytest.warns(DataWarning, match=r"1 items have no image file \(recorded as missing\): 2"):
        data = load_dataset("generic", "i.parquet", image_dir="img", time_col="t")
    assert data.interactions.items.raw_ids.tolist() == ["1", "2", "3"]
    assert data.catalog.media["image"].tolist() == [str(tmp_path / "img" / "1.jpg"), None,
                                                    str(tmp_path / "img" / "3.webp")]
    assert data.interactions.timestamps.tolist() == [3.0, 1.0, 2.0]


def test_split_files_tiny(tmp_path):
    (tmp_path / "train.csv").write_text("user,item\na,1\na,2\nb,2\n")
    (tmp_path / "valid.csv").write_text("user,item\nb,1\n")
    (tmp_path / "test.csv").write_text("user,item\na,3\nb,1\n")
    with pytest.warns(DataWarning, match=r"test\.csv: 1 rows with a user or item unknown .* first lines: 2"):
        split = load_split_files(tmp_path / "train.csv", tmp_path / "valid.csv", tmp_path / "test.csv")
    assert (len(split.train), len(split.valid), len(split.test)) == (3, 1, 1)
    assert split.test.users is split.train.users and split.test.items is split.train.items
    assert split.test.to_frame().values.tolist() == [["b", "1"]]


def test_load_dataset_unknown_name_lists_known_loaders():
    with pytest.raises(KeyError) as error:
        load_dataset("movielens-1m", "x")
    for name in LOADERS:
        assert name in str(error.value)


# ----------------------------------------------------------------------------- real data
@pytest.mark.shared_data
def test_real_movielens_100k_mm():
    folder = shared_data("movielens-100k-mm")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        data = load_movielens_100k(folder)
    inter = data.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (943, 1682, 100000)
    catalog = data.catalog
    assert catalog.summary() == {"text:title": 1682, "text:genres": 1682, "text:year": 1681, "text:plot": 1664,
                                 "image": 1663}
    rows = inter.items.to_index(["543", "1633", "1"])
    assert catalog.text["title"][rows].tolist() == ["Misérables, Les (1995)", "Á köldum klaka (Cold Fever) (1994)",
                                                    "Toy Story (1995)"]
    assert catalog.text["genres"][rows[2]] == "Animation, Children's, Comedy"
    found = messages(record)
    assert any("64 repeated movie_id rows merged into 1682 movies" in m for m in found), found
    assert any("19 items have no image file" in m for m in found), found


@pytest.mark.shared_data
def test_real_amazon_musical_instruments():
    path = shared_data("amazon-musical-instruments", "reviews_Musical_Instruments_5.json.gz")
    data = load_amazon_reviews(path)
    inter = data.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (1429, 900, 10261)
    texts = load_amazon_review_texts(path)
    assert len(texts) == 10261 and texts["summary"].notna().all()
    assert texts.loc[0, ["user", "item", "summary"]].tolist() == ["A2IBPI20UZIR0U", "1384719342", "good"]


@pytest.mark.shared_data
def test_real_p5_beauty():
    folder = shared_data("amazon-p5", "beauty")
    data = load_p5_sequences(folder)
    inter = data.interactions
    assert (inter.n_users, inter.n_items, len(inter)) == (22363, 12101, 198502)
    assert data.catalog.text["asin"][:2].tolist() == ["B004756YJA", "B004ZT0SSG"]
    # user 1's sequence is "1 2 3 4 5": leave-one-out tests on item 5
    split = leave_one_out(inter)
    user = inter.users.to_index(["1"])[0]
    test_items = split.test.item_index[split.test.user_index == user]
    assert inter.items.to_raw(test_items).tolist() == ["5"]
