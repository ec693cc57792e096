"""K-fold split by car, stratified by a per-car key (mask area or make)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carvana import rle
from carvana.folds import FoldSpec, assign_folds, make_folds
from carvana.layout import VIEWS_PER_CAR, DatasetPaths, image_name


def car_ids(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct 12-character lowercase hex car ids, in no particular order."""
    rng = np.random.default_rng(seed)
    ids = sorted({f"{int(x):012x}" for x in rng.integers(0, 16**12, size=n)})
    assert len(ids) == n
    return [ids[i] for i in rng.permutation(n)]


# --- assign_folds -----------------------------------------------------------------------------


@pytest.mark.parametrize(("n_cars", "n_folds"), [(8, 4), (10, 4), (11, 3), (40, 4), (40, 5), (7, 7)])
def test_every_car_gets_exactly_one_fold_and_sizes_differ_by_at_most_one(n_cars: int, n_folds: int) -> None:
    cars = car_ids(n_cars)
    folds = assign_folds(cars, list(range(n_cars)), n_folds, seed=0)
    assert sorted(folds) == sorted(cars)  # every car once (a dict cannot hold a car twice)
    sizes = Counter(folds.values())
    assert set(sizes) == set(range(n_folds))  # every fold used, none outside 0..n_folds-1
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_ten_cars_in_four_folds_give_sizes_3_3_2_2() -> None:
    # 10 = 4 + 4 + 2: two full blocks give every fold 2 cars, the last block of 2 gives two folds a third.
    folds = assign_folds(car_ids(10), None, 4, seed=0)
    assert sorted(Counter(folds.values()).values()) == [2, 2, 3, 3]


def test_assignment_is_deterministic_for_a_seed() -> None:
    cars = car_ids(40)
    keys = list(range(40))
    assert assign_folds(cars, keys, 4, seed=11) == assign_folds(cars, keys, 4, seed=11)
    assert assign_folds(cars, None, 4, seed=11) == assign_folds(cars, None, 4, seed=11)


def test_a_different_seed_gives_a_different_assignment() -> None:
    # 40 cars in 4 folds: each of the 10 blocks is dealt by its own random permutation of 4 folds,
    # so two seeds agree everywhere with probability (1/24)^10 if they are used at all.
    cars = car_ids(40)
    keys = list(range(40))
    assert assign_folds(cars, keys, 4, seed=1) != assign_folds(cars, keys, 4, seed=2)


def test_assignment_does_not_depend_on_the_order_of_cars_with_distinct_keys() -> None:
    cars = car_ids(40)
    key_of = {car: float(i) for i, car in enumerate(cars)}
    expected = assign_folds(cars, [key_of[c] for c in cars], 4, seed=5)
    for order in (cars[::-1], sorted(cars), [cars[i] for i in np.random.default_rng(9).permutation(40)]):
        assert assign_folds(order, [key_of[c] for c in order], 4, seed=5) == expected


@pytest.mark.parametrize("tied_keys", [False, True], ids=["no-keys", "tied-keys"])
def test_assignment_does_not_depend_on_the_order_of_cars_without_distinct_keys(tied_keys: bool) -> None:
    cars = car_ids(40)
    keys = ["Audi"] * 40 if tied_keys else None
    assert assign_folds(cars[::-1], keys, 4, seed=5) == assign_folds(cars, keys, 4, seed=5)


def test_stratification_by_a_numeric_key_deals_one_car_of_every_block_to_every_fold() -> None:
    # 40 cars with keys 0..39, 4 folds. Sorted by key, the cars form 10 blocks of 4 consecutive keys
    # {0..3}, {4..7}, ..., {36..39}; each block deals one car to each fold. So every fold holds
    # keys 4b + d_b (b = 0..9, d_b in 0..3), and its mean is (4 * 45) / 10 + mean(d_b) = 18 + mean(d_b),
    # in [18, 21]. The overall mean is 19.5: each fold mean is within 1.5 of it, and two fold means
    # differ by at most 3. (An unstratified random split of 10 cars per fold breaks the 1.5 bound
    # in some fold about 96 times in 100: each fold mean has a standard deviation near 3.)
    cars = car_ids(40)
    key_of = {car: i for i, car in enumerate(cars)}
    folds = assign_folds(cars, [key_of[c] for c in cars], 4, seed=3)
    for fold in range(4):
        keys = sorted(key_of[c] for c, f in folds.items() if f == fold)
        assert [k // 4 for k in keys] == list(range(10))  # one key from every block
        assert abs(np.mean(keys) - 19.5) <= 1.5
    means = [np.mean([key_of[c] for c, f in folds.items() if f == fold]) for fold in range(4)]
    assert max(means) - min(means) <= 3


def test_stratification_by_a_string_key_spreads_each_make_over_the_folds() -> None:
    # 12 cars, 3 makes of 4 cars each, 4 folds: sorted by make, the blocks are exactly the makes,
    # so every fold gets one car of each make.
    cars = car_ids(12)
    make_of = {car: ("Audi", "BMW", "Ford")[i % 3] for i, car in enumerate(cars)}
    folds = assign_folds(cars, [make_of[c] for c in cars], 4, seed=0)
    for fold in range(4):
        assert sorted(make_of[c] for c, f in folds.items() if f == fold) == ["Audi", "BMW", "Ford"]


@pytest.mark.parametrize("n_folds", [0, 1, 6])
def test_n_folds_outside_2_to_the_number_of_cars_is_rejected(n_folds: int) -> None:
    with pytest.raises(ValueError, match=re.escape(f"between 2 and the number of cars (5), got {n_folds}")):
        assign_folds(car_ids(5), None, n_folds, seed=0)


def test_duplicate_car_ids_are_rejected() -> None:
    cars = car_ids(5)
    with pytest.raises(ValueError, match="car_ids must be unique"):
        assign_folds([*cars, cars[0]], None, 2, seed=0)


def test_a_key_count_that_differs_from_the_car_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="3 keys for 5 cars"):
        assign_folds(car_ids(5), [1.0, 2.0, 3.0], 2, seed=0)


# --- FoldSpec ---------------------------------------------------------------------------------


def test_fold_spec_lists_the_stratify_choices() -> None:
    with pytest.raises(ValueError, match=r"stratify must be one of mask_area, make, none; got 'colour'"):
        FoldSpec(stratify="colour")


def test_fold_spec_rejects_fewer_than_two_folds() -> None:
    with pytest.raises(ValueError, match="n_folds must be at least 2, got 1"):
        FoldSpec(n_folds=1)


def test_fold_spec_accepts_two_folds() -> None:
    assert FoldSpec(n_folds=2).n_folds == 2  # the smallest split that has a held-out fold


# --- make_folds on a hand-made dataset folder --------------------------------------------------

N_CARS = 6
MASK_SHAPE = (4, 6)  # 24 pixels
MAKES = ("Audi", "Audi", "BMW", "BMW", "Ford", "Ford")


def write_dataset(
    data_dir: Path, shuffle_rows: bool = False, areas: tuple[int, ...] = (2, 4, 6, 8, 10, 12)
) -> list[str]:
    """6 cars x 16 views. Car k's masks cover the first areas[k] pixels (an area of 0 is an empty
    mask, an empty field in train_masks.csv)."""
    assert len(areas) == N_CARS
    cars = [f"{0xABC000000000 + k:012x}" for k in range(N_CARS)]
    rows = []
    for car, area in zip(cars, areas, strict=True):
        mask = np.zeros(MASK_SHAPE[0] * MASK_SHAPE[1], dtype=np.uint8)
        mask[:area] = 1
        text = rle.encode(mask.reshape(MASK_SHAPE))
        assert text == (f"1 {area}" if area else "")
        rows += [(image_name(car, view), text) for view in range(1, VIEWS_PER_CAR + 1)]
    masks = pd.DataFrame(rows, columns=["img", "rle_mask"])
    if shuffle_rows:
        masks = masks.sample(frac=1.0, random_state=0)
    data_dir.mkdir(parents=True, exist_ok=True)
    masks.to_csv(data_dir / "train_masks.csv", index=False)
    pd.DataFrame(
        {
            "id": cars,
            "year": ["2016"] * N_CARS,
            "make": list(MAKES),
            "model": ["X"] * N_CARS,
            "trim1": [""] * N_CARS,
            "trim2": [""] * N_CARS,
        }
    ).to_csv(data_dir / "metadata.csv", index=False)
    return cars


@pytest.mark.parametrize("stratify", ["mask_area", "make", "none"])
def test_make_folds_writes_one_row_per_image_and_one_fold_per_car(tmp_path: Path, stratify: str) -> None:
    cars = write_dataset(tmp_path / "data")
    folds_path = tmp_path / "out" / "folds.csv"
    table = make_folds(
        DatasetPaths(tmp_path / "data"), FoldSpec(n_folds=3, seed=0, stratify=stratify), folds_path
    )
    written = pd.read_csv(folds_path, dtype={"img": str, "car_id": str, "fold": int})
    assert list(written.columns) == ["img", "car_id", "fold"]
    assert len(written) == N_CARS * VIEWS_PER_CAR == 96
    expected_imgs = sorted(image_name(car, view) for car in cars for view in range(1, VIEWS_PER_CAR + 1))
    assert written["img"].tolist() == expected_imgs  # every image once, sorted by name
    assert (written["car_id"] == written["img"].str[:12]).all()
    assert (written.groupby("car_id")["fold"].nunique() == 1).all()  # no car in two folds
    assert sorted(written.groupby("fold")["car_id"].nunique().tolist()) == [2, 2, 2]  # 6 cars / 3 folds
    pd.testing.assert_frame_equal(table, written, check_dtype=False)
    # Folds are integers in the file and in the table: a float column would write "1.0", and the
    # tuning report would name its groups "1.0".
    assert set(pd.read_csv(folds_path, dtype=str)["fold"]) == {"0", "1", "2"}
    assert pd.api.types.is_integer_dtype(table["fold"])


def test_make_folds_stratifies_by_mask_area(tmp_path: Path) -> None:
    # Areas are 2, 4, ..., 12 for cars 0..5; 3 folds: blocks {car 0, 1, 2} and {car 3, 4, 5}, so
    # every fold has one small car and one large car.
    cars = write_dataset(tmp_path / "data")
    table = make_folds(DatasetPaths(tmp_path / "data"), FoldSpec(3, 0, "mask_area"), tmp_path / "folds.csv")
    fold_of = table.groupby("car_id")["fold"].first()
    assert sorted(fold_of[cars[:3]].tolist()) == [0, 1, 2]
    assert sorted(fold_of[cars[3:]].tolist()) == [0, 1, 2]


def test_make_folds_stratifies_by_make(tmp_path: Path) -> None:
    # Makes Audi, Audi, BMW, BMW, Ford, Ford with 3 folds: blocks {Audi, Audi, one BMW} and
    # {the other BMW, Ford, Ford}, so no fold gets two cars of the same make.
    cars = write_dataset(tmp_path / "data")
    table = make_folds(DatasetPaths(tmp_path / "data"), FoldSpec(3, 0, "make"), tmp_path / "folds.csv")
    fold_of = table.groupby("car_id")["fold"].first()
    for fold in range(3):
        makes = [make for car, make in zip(cars, MAKES, strict=True) if fold_of[car] == fold]
        assert len(makes) == len(set(makes)) == 2


def test_make_folds_reads_an_empty_mask_as_area_zero(tmp_path: Path) -> None:
    # Car 0 has no foreground in any view: its train_masks.csv fields are empty, which must read as
    # the empty RLE string (area 0), not as a missing value. Areas 0, 4, 6, 8, 10, 12 with 3 folds:
    # blocks {car 0, 1, 2} and {car 3, 4, 5}, so every fold has one small car and one large car.
    cars = write_dataset(tmp_path / "data", areas=(0, 4, 6, 8, 10, 12))
    assert ",\n" in (tmp_path / "data" / "train_masks.csv").read_text()  # an empty field really is there
    table = make_folds(DatasetPaths(tmp_path / "data"), FoldSpec(3, 0, "mask_area"), tmp_path / "folds.csv")
    fold_of = table.groupby("car_id")["fold"].first()
    assert sorted(fold_of[cars[:3]].tolist()) == [0, 1, 2]
    assert sorted(fold_of[cars[3:]].tolist()) == [0, 1, 2]


def test_make_folds_accepts_as_many_folds_as_cars(tmp_path: Path) -> None:
    # 6 cars in 6 folds (leave one car out): one block of 6 deals one car to each fold.
    cars = write_dataset(tmp_path / "data")
    table = make_folds(DatasetPaths(tmp_path / "data"), FoldSpec(n_folds=6), tmp_path / "folds.csv")
    fold_of = table.groupby("car_id")["fold"].first()
    assert sorted(fold_of[cars].tolist()) == [0, 1, 2, 3, 4, 5]


# 12 cars, 4 makes of 3 cars each, listed in metadata.csv in an order unrelated to their makes.
MAKE_BY_ID = ("Ford", "Audi", "Jeep", "BMW", "Audi", "Ford", "Jeep", "BMW", "BMW", "Jeep", "Ford", "Audi")


@pytest.mark.parametrize("id_style", ["hex", "digits"])
def test_make_folds_deals_every_make_over_all_folds(tmp_path: Path, id_style: str) -> None:
    # With 3 folds and 3 cars of each make, the cars sorted by make form blocks that are exactly the
    # makes, so every fold gets one car of each make, for every seed. A split that ignores the make
    # does so by chance in (3!)^4 / (12! / (4!)^3) = 1296 / 34650, about 1 seed in 27, so 5 seeds
    # in a row about 1 time in 14 million. Ids made of digits only (hex ids can be) must stay
    # strings, or no car would find its make in metadata.csv.
    n_cars = len(MAKE_BY_ID)
    cars = [f"{0xABC000000000 + k:012x}" if id_style == "hex" else f"{k:012d}" for k in range(n_cars)]
    rows = [(image_name(car, view), f"1 {k + 1}") for k, car in enumerate(cars) for view in (1, 2)]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    pd.DataFrame(rows, columns=["img", "rle_mask"]).to_csv(data_dir / "train_masks.csv", index=False)
    pd.DataFrame({"id": cars, "year": ["2016"] * n_cars, "make": list(MAKE_BY_ID)}).to_csv(
        data_dir / "metadata.csv", index=False
    )
    make_of = dict(zip(cars, MAKE_BY_ID, strict=True))
    for seed in range(5):
        table = make_folds(DatasetPaths(data_dir), FoldSpec(3, seed, "make"), tmp_path / "folds.csv")
        fold_of = table.groupby("car_id")["fold"].first()
        for fold in range(3):
            makes = sorted(make_of[car] for car in cars if fold_of[car] == fold)
            assert makes == ["Audi", "BMW", "Ford", "Jeep"], f"seed {seed}, fold {fold}"


# 12 cars whose ids sort in an order unrelated to their mask areas: the car with the k-th smallest
# id has area rank AREA_RANK_BY_ID[k] (0 = smallest). Sorted by id, blocks of 3 hold area ranks
# {0, 4, 8}, {1, 5, 9}, {2, 6, 10}, {3, 7, 11}; sorted by area they hold {0, 1, 2}, {3, 4, 5}, ...
AREA_RANK_BY_ID = (0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11)


def write_masks_out_of_id_order(data_dir: Path) -> list[str]:
    """train_masks.csv for 12 cars x 16 views on 5x6 masks; the car of area rank r covers the first
    2 * (r + 1) pixels of each view. Returns the car ids from the smallest area to the largest."""
    by_id = [f"{0xDEF000000000 + k:012x}" for k in range(len(AREA_RANK_BY_ID))]
    by_area = [by_id[AREA_RANK_BY_ID.index(rank)] for rank in range(len(by_id))]
    rows = []
    for rank, car in enumerate(by_area):
        text = f"1 {2 * (rank + 1)}"  # one run of 2 * (rank + 1) pixels from the first
        rows += [(image_name(car, view), text) for view in range(1, VIEWS_PER_CAR + 1)]
    data_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["img", "rle_mask"]).to_csv(data_dir / "train_masks.csv", index=False)
    return by_area


@pytest.mark.parametrize("seed", range(20))
def test_make_folds_deals_every_block_of_cars_sorted_by_mask_area_over_all_folds(
    tmp_path: Path, seed: int
) -> None:
    # The module's promise: cars sorted by mask area are cut into blocks of n_folds cars and every
    # block deals one car to each fold. With 12 cars in 3 folds the blocks by area are ranks
    # {0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9, 10, 11}. A split that ignores the key (or sorts by car id,
    # whose blocks here mix the area blocks) keeps all four blocks apart by chance in at most
    # (3!)^4 / (12! / (4!)^3) = 1296 / 34650, about 1 seed in 27.
    by_area = write_masks_out_of_id_order(tmp_path / "data")
    assert sorted(by_area) != by_area and sorted(by_area) != by_area[::-1]  # ids not in area order
    spec = FoldSpec(n_folds=3, seed=seed, stratify="mask_area")
    table = make_folds(DatasetPaths(tmp_path / "data"), spec, tmp_path / "folds.csv")
    fold_of = table.groupby("car_id")["fold"].first()
    for start in range(0, 12, 3):
        assert sorted(fold_of[by_area[start : start + 3]].tolist()) == [0, 1, 2], f"block {start // 3}"


@pytest.mark.parametrize("stratify", ["mask_area", "make", "none"])
def test_make_folds_does_not_depend_on_the_row_order_of_train_masks_csv(
    tmp_path: Path, stratify: str
) -> None:
    write_dataset(tmp_path / "a")
    write_dataset(tmp_path / "b", shuffle_rows=True)
    spec = FoldSpec(3, 4, stratify)
    a = make_folds(DatasetPaths(tmp_path / "a"), spec, tmp_path / "a.csv")
    b = make_folds(DatasetPaths(tmp_path / "b"), spec, tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)


def test_make_folds_rejects_more_folds_than_cars(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data")
    folds_path = tmp_path / "folds.csv"
    with pytest.raises(
        ValueError, match=r"n_folds = 7 is more than the 6 cars in .*train_masks\.csv; choose 2\.\.6"
    ):
        make_folds(DatasetPaths(tmp_path / "data"), FoldSpec(n_folds=7), folds_path)
    assert not folds_path.exists()
