"""api.textkeys: search keys and ICU-compatible Vietnamese sort keys (no database, no ICU).

The reference order is tests/data/vi_icu_order.txt, generated with real ICU (see its header).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import random
import re
import unicodedata
from pathlib import Path

import pytest

from api.textkeys import nfc, search_key, sort_key

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ROOT / "tests" / "data" / "vi_icu_order.txt"
AREAS = ROOT / "migrations" / "data" / "areas_2025.csv"
DIGEST = re.compile(r"^# icu-order (\w+) count=(\d+) sha256=([0-9a-f]{64})$")


def _oracle() -> tuple[list[str], dict[str, tuple[int, str]]]:
    names: list[str] = []
    digests: dict[str, tuple[int, str]] = {}
    for line in ORACLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            if m := DIGEST.match(line):
                digests[m[1]] = (int(m[2]), m[3])
        elif line:
            names.append(line)
    return names, digests


ORACLE_NAMES, ORACLE_DIGESTS = _oracle()
with AREAS.open(encoding="utf-8", newline="") as _f:
    AREA_ROWS = list(csv.DictReader(_f))
CSV_VALUES = {col: sorted({r[col] for r in AREA_ROWS}) for col in ("name", "short_name")}


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# --- nfc ----------------------------------------------------------------------------------


def test_nfc_composes_and_collapses_whitespace() -> None:
    assert nfc(nfd("  Phường\tBa   Đình \n")) == "Phường Ba Đình"
    assert nfc(nfd("Thanh Hóa")) == "Thanh Hóa" == unicodedata.normalize("NFC", "Thanh Hóa")
    assert nfc("Hà\u00a0Nội") == "Hà Nội"
    assert nfc("   ") == ""


# --- search_key ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tỉnh Đồng Nai", "tinh dong nai"),
        ("Đồng Nai", "dong nai"),
        ("Thành phố Hà Nội", "thanh pho ha noi"),
        ("THANH HÓA", "thanh hoa"),
        ("Tỉnh Thanh Hóa", "tinh thanh hoa"),
        ("ĐẮK LẮK", "dak lak"),
        ("đĐ", "dd"),
        ("Xã Ea H'Leo", "xa ea h leo"),
        ("Xã Cư M’gar", "xa cu m gar"),
        ("  Phường  Văn Miếu - Quốc Tử Giám ", "phuong van mieu quoc tu giam"),
        ("Phường 1 Bảo Lộc", "phuong 1 bao loc"),
        ("Ưu Ơn Ừ Ỵ", "uu on u y"),
        ("", ""),
        (" -- ", ""),
    ],
)
def test_search_key_examples(text: str, expected: str) -> None:
    assert search_key(text) == expected
    assert search_key(nfd(text)) == expected


def test_search_key_nfd_input() -> None:
    decomposed = nfd("Thành phố Hồ Chí Minh")
    assert decomposed != "Thành phố Hồ Chí Minh"  # really NFD
    assert search_key(decomposed) == "thanh pho ho chi minh"


def test_search_key_of_every_area_is_plain_ascii_words() -> None:
    words = re.compile(r"[a-z0-9]+( [a-z0-9]+)*")
    for row in AREA_ROWS:
        for col in ("name", "short_name"):
            key = search_key(row[col])
            assert words.fullmatch(key), (row[col], key)
            assert search_key(nfd(row[col])) == key
            assert search_key(row[col].upper()) == key
        assert search_key(row["name"]).endswith(" " + search_key(row["short_name"]))


# --- sort_key against the ICU oracle ------------------------------------------------------


def test_oracle_file_is_usable() -> None:
    assert len(ORACLE_NAMES) >= 300
    assert len(set(ORACLE_NAMES)) == len(ORACLE_NAMES)
    assert all(unicodedata.is_normalized("NFC", n) for n in ORACLE_NAMES)
    assert set(ORACLE_DIGESTS) == {"name", "short_name"}
    # The real-name sample still comes from the committed CSV.
    real = set(CSV_VALUES["name"]) | set(CSV_VALUES["short_name"])
    assert sum(n in real for n in ORACLE_NAMES) >= 200


def test_sort_key_reproduces_icu_order() -> None:
    shuffled = ORACLE_NAMES[:]
    random.Random(20251).shuffle(shuffled)
    assert shuffled != ORACLE_NAMES
    assert sorted(shuffled, key=sort_key) == ORACLE_NAMES
    # Strictly increasing: ICU has no ties here, so neither may the keys.
    keys = [sort_key(n) for n in ORACLE_NAMES]
    pairs = zip(itertools.pairwise(ORACLE_NAMES), itertools.pairwise(keys), strict=True)
    assert [names for names, (ka, kb) in pairs if ka >= kb] == []


@pytest.mark.parametrize("column", ["short_name", "name"])
def test_sort_key_orders_every_csv_value_like_icu(column: str) -> None:
    values = CSV_VALUES[column]
    ordered = sorted(values, key=sort_key)
    # Whatever the sample of this column in the oracle, it must keep the oracle's order.
    position = {n: i for i, n in enumerate(ORACLE_NAMES)}
    sampled = [v for v in ordered if v in position]
    assert len(sampled) >= 50
    assert sampled == sorted(sampled, key=position.__getitem__)
    # The whole column, checked against the digest ICU computed for it.
    count, digest = ORACLE_DIGESTS[column]
    assert len(values) == count, "areas_2025.csv changed: regenerate tests/data/vi_icu_order.txt"
    keys = [sort_key(v) for v in ordered]
    assert len(set(keys)) == len(keys)
    assert hashlib.sha256("\n".join(ordered).encode()).hexdigest() == digest


def test_sort_key_same_for_nfc_and_nfd() -> None:
    for name in ORACLE_NAMES + CSV_VALUES["name"]:
        assert sort_key(nfd(name)) == sort_key(name), name


# --- sort_key: the rules, spelled out -----------------------------------------------------


def ascending(*names: str) -> bool:
    keys = [sort_key(n) for n in names]
    return all(a < b for a, b in itertools.pairwise(keys))


def test_alphabet_has_separate_letters() -> None:
    assert ascending("az", "ă", "âz", "b")
    assert ascending("dz", "đ", "e", "ez", "ê", "f")
    assert ascending("oz", "ô", "ơ", "p")
    assert ascending("uz", "ư", "v")
    assert ascending("Dak Lak", "Đắk Lắk")


def test_tones_are_secondary_in_cldr_vi_order() -> None:
    assert ascending("a", "à", "ả", "ã", "á", "ạ", "ab", "ă")
    assert ascending("Hoa", "Hòa", "Hỏa", "Hõa", "Hóa", "Họa", "Hoan")
    assert ascending("Haà", "Hàa")  # the first differing tone decides
    assert ascending("Hà", "Hai")  # a letter outweighs any tone


def test_case_is_tertiary_lower_first() -> None:
    assert ascending("ha", "hA", "Ha", "HA", "hà", "Hà")
    assert ascending("đà", "Đà", "đạ", "Đạ")  # a tone outweighs case
    assert sort_key("Thanh Hóa") != sort_key("thanh hóa")


def test_digits_spaces_and_punctuation() -> None:
    assert ascending("1", "10", "2", "9", "a")
    assert ascending("Phường 1", "Phường 10", "Phường 2", "Phường A")
    assert ascending("An", "An Bình", "An-Bình", "An'Bình", "Anh")  # not ignorable
    assert ascending("Văn Miếu - Quốc Tử Giám", "Văn Miếu Quốc Tử Giám")


def test_keys_are_safe_to_store_and_compose() -> None:
    samples = [*ORACLE_NAMES, *CSV_VALUES["name"], "a\x00b", "\x00", "", "Ω ω 中文 ١٢ ½ ﬁ €"]
    for text in samples:
        key = sort_key(text)
        assert "\x00" not in key
        assert all(ch >= " " for ch in key), text  # "\x01" can join keys into composite keys
    assert sort_key("") == ""
    assert sort_key("a\x00b") == sort_key("ab")
    composite = sorted(ORACLE_NAMES, key=lambda n: sort_key(n) + "\x01" + sort_key(n[::-1]))
    assert composite == ORACLE_NAMES


def test_keys_stay_short() -> None:
    for name in CSV_VALUES["name"]:
        assert len(sort_key(name).encode()) <= 2 * len(name.encode()) + 4, name
