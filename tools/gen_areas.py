"""Generate ``migrations/data/areas_2025.csv`` (Vietnam's post-2025 administrative areas).

DEV-ONLY. This script is never imported by the application and is not run by CI.

The data comes from the PyPI package ``vietnam-provinces`` (by Nguyễn Hồng Quân,
https://github.com/sunshine-tech/VietnamProvinces), which is licensed GPL-3.0-or-later.
The package is used ONLY to produce the committed CSV; it must never become a runtime
dependency of this project. Install it in a throwaway virtualenv (it needs Python >= 3.12):

    python3.12 -m venv /tmp/vp
    /tmp/vp/bin/pip install vietnam-provinces
    /tmp/vp/bin/python tools/gen_areas.py          # run from the repository root
    rm -rf /tmp/vp

Attribution: administrative division names and codes from the ``vietnam-provinces`` package
by Nguyễn Hồng Quân (GPL-3.0-or-later), https://github.com/sunshine-tech/VietnamProvinces,
itself based on the National Statistics Office of Viet Nam (https://danhmuchanhchinh.nso.gov.vn/).

Only the package's post-July-2025, two-level API (``vietnam_provinces.Province`` /
``vietnam_provinces.Ward``) is used, not ``vietnam_provinces.legacy`` (the old three-level
data). The script checks the expected counts (34 provinces, 3,321 wards, 166 in Thanh Hóa)
and refuses to write anything if the package disagrees.
"""

from __future__ import annotations

import csv
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import vietnam_provinces
from vietnam_provinces import Province, Ward

OUT = Path(__file__).resolve().parent.parent / "migrations" / "data" / "areas_2025.csv"
HEADER = ("code", "name", "short_name", "division_type", "level", "parent_code")

# package division type -> (English slug, official name prefix)
DIVISIONS = {
    "thành phố trung ương": ("municipality", "Thành phố"),
    "tỉnh": ("province", "Tỉnh"),
    "phường": ("ward", "Phường"),
    "xã": ("commune", "Xã"),
    "đặc khu": ("special_zone", "Đặc khu"),
}
EXPECTED_PROVINCES = 34
EXPECTED_WARDS = 3321
EXPECTED_THANH_HOA = ("38", 166)


def clean(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def split_name(name: str, division_type: str) -> tuple[str, str]:
    """Return (full name with canonical prefix, short name) for a package name."""
    prefix = DIVISIONS[division_type][1]
    name = clean(name)
    # The package has at least one lower-case prefix ("xã Bắc Sơn"): compare case-insensitively.
    if not name.casefold().startswith(prefix.casefold() + " "):
        sys.exit(f"unexpected name {name!r} for division type {division_type!r}")
    short = name[len(prefix) + 1 :].strip()
    return f"{prefix} {short}", short


def build_rows() -> list[tuple[str, str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str, str]] = []
    for p in Province.iter_all():
        dt = str(p.division_type.value)
        name, short = split_name(p.name, dt)
        rows.append((f"{int(p.code):02d}", name, short, DIVISIONS[dt][0], "province", ""))
    for w in Ward.iter_all():
        dt = str(w.division_type.value)
        name, short = split_name(w.name, dt)
        parent = f"{int(w.province_code):02d}"
        rows.append((f"{int(w.code):05d}", name, short, DIVISIONS[dt][0], "ward", parent))
    level_order = {"province": 0, "ward": 1}
    rows.sort(key=lambda r: (level_order[r[4]], r[0]))
    return rows


def verify(rows: list[tuple[str, str, str, str, str, str]]) -> list[str]:
    problems: list[str] = []
    provinces = {r[0] for r in rows if r[4] == "province"}
    wards = [r for r in rows if r[4] == "ward"]
    per_province = Counter(r[5] for r in wards)
    if len(provinces) != EXPECTED_PROVINCES:
        problems.append(f"{len(provinces)} provinces, expected {EXPECTED_PROVINCES}")
    if len(wards) != EXPECTED_WARDS:
        problems.append(f"{len(wards)} wards, expected {EXPECTED_WARDS}")
    code, count = EXPECTED_THANH_HOA
    if per_province[code] != count:
        problems.append(f"{per_province[code]} wards under {code}, expected {count}")
    if len({r[0] for r in rows}) != len(rows):
        problems.append("duplicate codes")
    if any(len(r[0]) != 2 for r in rows if r[4] == "province"):
        problems.append("province code not 2 digits")
    if any(len(r[0]) != 5 for r in wards):
        problems.append("ward code not 5 digits")
    orphans = sorted({r[5] for r in wards} - provinces)
    if orphans:
        problems.append(f"wards with unknown parent: {orphans}")
    if any(not r[1] or not r[2] for r in rows):
        problems.append("empty name or short_name")
    return problems


def main() -> None:
    rows = build_rows()
    problems = verify(rows)
    if problems:
        sys.exit("refusing to write CSV: " + "; ".join(problems))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    types = Counter(r[3] for r in rows)
    print(
        f"vietnam-provinces {vietnam_provinces.__version__} "
        f"(data {vietnam_provinces.__data_version__}): wrote {len(rows)} rows to {OUT}; "
        + ", ".join(f"{k}={v}" for k, v in sorted(types.items()))
    )


if __name__ == "__main__":
    main()
