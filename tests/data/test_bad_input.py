"""Bad input: each case is a clear error naming file and line, or a counted skip with a warning."""
from __future__ import annotations

import gzip
import importlib.util
import json
import warnings

import numpy as np
import pytest

from prismrec.data.loaders import (
    DataWarning, load_amazon_reviews, load_atomic_files, load_generic, load_mmrec, load_movielens_100k,
    load_p5_sequences, load_recbole_ml100k, load_split_files, load_tmdb_items)
from prismrec.data.loaders.movielens import GENRES

FLAGS = "|".join(["0"] * 18 + ["1"])


def movielens(folder, u_data: str, u_item: bytes | None = None):
    folder.mkdir(exist_ok=True)
    (folder / "u.data").write_text(u_data)
    (folder / "u.item").write_bytes(u_item if u_item is not None else f"1|One (1990)|01-Jan-1990||url|{FLAGS}\n"
                                    f"2|Two (1991)|01-Jan-1991||url|{FLAGS}\n".encode())
    return folder


def messages(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DataWarning)]


def recorded(call, *args, **kwargs):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = call(*args, **kwargs)
    return result, messages(record)


# ----------------------------------------------------------------------------- malformed lines
def test_u_data_wrong_column_count_names_file_and_line(tmp_path):
    folder = movielens(tmp_path / "ml", "1\t1\t5\t10\n1\t2\t4\n")
    with pytest.raises(ValueError, match=r"u\.data, line 2: expected 4 '\\t'-separated fields, found 3"):
        load_movielens_100k(folder)


def test_u_data_non_numeric_user_names_file_line_and_value(tmp_path):
    folder = movielens(tmp_path / "ml", "1\t1\t5\t10\n2\t2\t4\t11\nabc\t1\t3\t12\n")
    with pytest.raises(ValueError, match=r"u\.data, line 3: column 'user' expected an integer, found 'abc'"):
        load_movielens_100k(folder)


def test_u_data_non_numeric_rating(tmp_path):
    folder = movielens(tmp_path / "ml", "1\t1\tfive\t10\n")
    with pytest.raises(ValueError, match=r"u\.data, line 1: column 'rating' expected a number, found 'five'"):
        load_movielens_100k(folder)


def test_u_data_blank_line_inside_is_a_counted_skip(tmp_path):
    folder = movielens(tmp_path / "ml", "1\t1\t5\t10\n\n2\t2\t4\t11\n\n\n")
    data, found = recorded(load_movielens_100k, folder)
    assert len(data.interactions) == 2
    assert any("u.data: 1 blank lines skipped; first lines: 2" in m for m in found), found


def test_u_item_wrong_field_count(tmp_path):
    folder = movielens(tmp_path / "ml", "1\t1\t5\t10\n", b"1|One|01-Jan-1990||url|0|1\n")
    with pytest.raises(ValueError, match=rf"u\.item, line 1: expected {5 + len(GENRES)} '\|'-separated fields, found 7"):
        load_movielens_100k(folder)


def test_amazon_malformed_line_and_missing_key(tmp_path):
    path = tmp_path / "r.json.gz"
    good = json.dumps({"reviewerID": "A", "asin": "X", "overall": 5, "unixReviewTime": 1})
    with gzip.open(path, "wt") as handle:
        handle.write(good + "\n{not json at all\n")
    with pytest.raises(ValueError, match=r"r\.json\.gz, line 2: expected one JSON object per line"):
        load_amazon_reviews(path)
    with gzip.open(path, "wt") as handle:
        handle.write(good + "\n" + json.dumps({"reviewerID": "B", "overall": 3, "unixReviewTime": 2}) + "\n")
    with pytest.raises(ValueError, match=r"r\.json\.gz, line 2: expected keys .* missing \['asin'\]"):
        load_amazon_reviews(path)


def test_p5_non_numeric_item_and_repeated_user(tmp_path):
    (tmp_path / "sequential_data.txt").write_text("1 1 2\n2 3 x4\n")
    with pytest.raises(ValueError, match=r"sequential_data\.txt, line 2: column 'user/item id' expected an integer, "
                                         r"found 'x4'"):
        load_p5_sequences(tmp_path)
    (tmp_path / "sequential_data.txt").write_text("1 1 2\n2 3\n1 4\n")
    with pytest.raises(ValueError, match=r"line 3: expected one line per user, found user 1 again \(first on line 1\)"):
        load_p5_sequences(tmp_path)


def test_p5_user_without_items_is_a_counted_skip(tmp_path):
    (tmp_path / "sequential_data.txt").write_text("1 1 2\n2\n3 2\n")
    data, found = recorded(load_p5_sequences, tmp_path)
    assert data.interactions.users.raw_ids.tolist() == ["1", "3"]
    assert any("1 users with an empty item sequence skipped; first lines: 2" in m for m in found), found


def test_mmrec_bad_x_label(tmp_path):
    (tmp_path / "a.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n0\t1\t3\n")
    with pytest.raises(ValueError, match=r"a\.inter, line 3: x_label expected 0, 1 or 2, found '3'"):
        load_mmrec(tmp_path)


def test_mmrec_gap_in_item_ids_is_reported_and_rows_still_line_up(tmp_path):
    (tmp_path / "a.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n1\t2\t0\n")
    np.save(tmp_path / "text_feat.npy", np.eye(3))
    data, found = recorded(load_mmrec, tmp_path)
    assert data.interactions.items.raw_ids.tolist() == ["0", "1", "2"]
    assert data.item_features["text"][2].tolist() == [0, 0, 1]
    assert any("1 item ids in 0..n-1 have no interaction" in m and ": 1" in m for m in found), found


def test_atomic_bad_header_and_short_line(tmp_path):
    (tmp_path / "t.inter").write_text("user_id\titem_id:token\nu\ti\n")
    with pytest.raises(ValueError, match=r"t\.inter, line 1: header field 'user_id' expected 'name:type'"):
        load_atomic_files(tmp_path, "t")
    (tmp_path / "t.inter").write_text("user_id:token\titem_id:token\nu\ti\nu2\n")
    with pytest.raises(ValueError, match=r"t\.inter, line 3: expected 2 tab-separated fields"):
        load_atomic_files(tmp_path, "t")


def test_tmdb_bad_genre_flag(tmp_path):
    genres = ["genre_unknown", "Action"]
    (tmp_path / "items_tmdb.csv").write_text(
        "movie_id,title," + ",".join(genres) + ",year,overview\n1,A,0,1,1990,x\n2,B,0,yes,1991,y\n")
    with pytest.raises(ValueError, match=r"items_tmdb\.csv, line 3: genre column 'Action' expected 0 or 1, found 'yes'"):
        load_tmdb_items(tmp_path / "items_tmdb.csv")


def test_generic_missing_column_and_bad_rating(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,stars\na,1,5\nb,2,good\n")
    with pytest.raises(ValueError, match=r"r\.csv: missing column\(s\) \['rating'\]; found \['user', 'item', 'stars'\]"):
        load_generic(path, rating_col="rating")
    with pytest.raises(ValueError, match=r"r\.csv, line 3: column 'stars' expected a number, found 'good'"):
        load_generic(path, rating_col="stars")


def test_generic_rows_without_ids_are_counted_skips(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item\na,1\n,2\nb,\nb,3\n")
    data, found = recorded(load_generic, path)
    assert len(data.interactions) == 2
    assert any("2 rows without a 'user' or 'item' value skipped; first lines: 3, 4" in m for m in found), found


# ----------------------------------------------------------------------------- unknown ids in split files
def test_split_files_unknown_ids_and_leaked_pairs_are_counted(tmp_path):
    (tmp_path / "train.csv").write_text("user,item\na,1\nb,2\nb,1\n")
    (tmp_path / "valid.csv").write_text("user,item\na,2\na,1\n")
    (tmp_path / "test.csv").write_text("user,item\nz,1\na,9\nb,3\nb,2\nz,9\na,2\n")
    split, found = recorded(load_split_files, tmp_path / "train.csv", tmp_path / "valid.csv", tmp_path / "test.csv")
    assert any("test.csv: 4 rows with a user or item unknown to the training file skipped; "
               "first lines: 2, 3, 4, 6" in m for m in found), found
    assert any("valid.csv: 1 rows whose (user, item) pair is already in the training file skipped; "
               "first lines: 3" in m for m in found), found
    assert any("test.csv: 1 rows whose (user, item) pair is already in the training file" in m for m in found), found
    assert split.valid.to_frame().values.tolist() == [["a", "2"]]
    assert split.test.to_frame().values.tolist() == [["a", "2"]]
    assert split.train.n_users == 2 and split.train.n_items == 2


# ----------------------------------------------------------------------------- users with no interactions
def test_u_user_lists_users_absent_from_u_data(tmp_path):
    folder = movielens(tmp_path / "ml", "1\t1\t5\t10\n3\t2\t4\t11\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n"
                                   "4|24|M|technician|43537\n")
    data, found = recorded(load_movielens_100k, folder, with_catalog=False)
    assert data.interactions.users.raw_ids.tolist() == ["1", "3"]
    assert any("u.user: 2 users have no interaction in u.data and are left out: 2, 4" in m for m in found), found


def test_user_with_every_rating_below_threshold_is_not_an_empty_user(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\na,1,5\nb,1,1\nb,2,2\nc,2,4\n")
    data, found = recorded(load_generic, path, rating_col="rating", rating_threshold=4)
    assert data.interactions.users.raw_ids.tolist() == ["a", "c"]
    assert (data.interactions.user_counts() > 0).all()
    assert any("1 users have no rating >= 4 and are left out: b" in m for m in found), found


# ----------------------------------------------------------------------------- encodings
def test_latin1_u_item_decodes_accents(tmp_path):
    item = b"1|Mis\xe9rables, Les (1995)|01-Jan-1995||url|" + FLAGS.encode() + b"\n"
    folder = movielens(tmp_path / "ml", "1\t1\t5\t10\n", item)
    data = load_movielens_100k(folder)
    assert data.catalog.text["title"][0] == "Misérables, Les (1995)"


def test_utf8_u_item_is_not_double_decoded(tmp_path):
    item = "1|Misérables, Les (1995)|01-Jan-1995||url|".encode() + FLAGS.encode() + b"\n"
    folder = movielens(tmp_path / "ml", "1\t1\t5\t10\n", item)
    assert load_movielens_100k(folder).catalog.text["title"][0] == "Misérables, Les (1995)"


def test_generic_non_utf8_file_names_file_line_and_encoding_option(tmp_path):
    (tmp_path / "r.csv").write_text("user,item\na,1\n")
    (tmp_path / "items.csv").write_bytes(b"item,title\n1,Caf\xe9\n")
    with pytest.raises(ValueError, match=r"items\.csv, line 2: the file is not valid utf-8 .*encoding='latin-1'"):
        load_generic(tmp_path / "r.csv", tmp_path / "items.csv")
    data = load_generic(tmp_path / "r.csv", tmp_path / "items.csv", encoding="latin-1")
    assert data.catalog.text["title"].tolist() == ["Café"]


# ----------------------------------------------------------------------------- missing images
def test_missing_image_files_are_counted_and_none(tmp_path):
    (tmp_path / "r.csv").write_text("user,item\na,1\na,2\nb,3\n")
    (tmp_path / "items.csv").write_text("item,title,image\n1,One,one.jpg\n2,Two,gone.jpg\n3,Three,lost/3.png\n")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "one.jpg").write_bytes(b"jpg")
    data, found = recorded(load_generic, tmp_path / "r.csv", tmp_path / "items.csv", tmp_path / "img",
                           image_col="image")
    assert data.catalog.media["image"].tolist() == [str(tmp_path / "img" / "one.jpg"), None, None]
    assert data.catalog.summary()["image"] == 1
    missing = [m for m in found if "image files are missing" in m]
    assert len(missing) == 1 and "items.csv: 2 image files are missing" in missing[0]
    assert "gone.jpg" in missing[0] and "lost/3.png" in missing[0]


# ----------------------------------------------------------------------------- recbole not installed
def test_recbole_missing_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "recbole" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps recbole==1\.2\.1"):
        load_recbole_ml100k()


def test_generic_gzipped_tsv_blank_line_inside_is_counted_and_lines_stay_true(tmp_path):
    path = tmp_path / "r.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("user\titem\trating\na\t1\t5\n\nb\t2\tx\n\n\n")
    with pytest.raises(ValueError, match=r"r\.tsv\.gz, line 4: column 'rating' expected a number, found 'x'"):
        recorded(load_generic, path, rating_col="rating")
    data, found = recorded(load_generic, path)
    assert data.name == "r" and len(data.interactions) == 2
    assert any("1 rows without a 'user' or 'item' value skipped; first lines: 3" in m for m in found), found
