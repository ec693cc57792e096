"""The weight search, the flags of networks that learnt nothing, and the ablation table, on
hand-made OOF sets whose answers are worked out here."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from carvana.tuning.ablation import Step, ablation_table
from carvana.tuning.blend import blend_curves, choose_blend, nested_choice, simplex_grid
from carvana.tuning.flags import FlagRule, edge_warnings, flag_jobs
from carvana.tuning.oof_set import ENSEMBLE
from carvana.tuning.threshold import ThresholdGrid
from carvana.tuning.tune import tune
from oof_sets import IMAGES, oof_set


def test_the_simplex_grid_at_half_steps_is_the_six_blends_of_three() -> None:
    np.testing.assert_array_equal(
        simplex_grid(3, 0.5),
        [[1, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]],
    )
    assert simplex_grid(3, 0.1).shape == (66, 3)  # 12 choose 2
    assert simplex_grid(2, 0.25).tolist() == [[1, 0], [0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0, 1]]


@pytest.mark.parametrize("step", [0.3, 0, -0.5, 1.5])
def test_a_step_that_does_not_divide_one_is_refused(step: float) -> None:
    with pytest.raises(ValueError, match="must divide 1"):
        simplex_grid(3, step)


def test_a_grid_too_fine_for_its_models_is_refused() -> None:
    with pytest.raises(ValueError, match="raise the step"):
        simplex_grid(15, 0.1)  # 1,961,256 blends


def test_a_blend_of_one_image_worked_out_by_hand() -> None:
    # two models on four pixels, truth car on the first two. Model a: 255, 0, 255, 0; b: 255, 255,
    # 0, 0. Equal weights: levels (of 510) 510, 255, 255, 0; at 0.5 (level 255 up) three pixels
    # are car: Dice 2*2/(3+2) = 0.8; at 0.6 (306 up) one: 2/(1+2) = 2/3.
    # a alone: car on pixels 1 and 3: Dice 2/(2+2) = 0.5 at both. b alone: exactly the truth: 1.
    a = np.array([[255, 0, 255, 0]], dtype=np.uint8)
    b = np.array([[255, 255, 0, 0]], dtype=np.uint8)
    truth = np.array([[1, 1, 0, 0]])
    curves = blend_curves([a, b], truth, np.array([[0.5, 0.5], [1, 0], [0, 1]]), np.array([0.5, 0.6]))
    np.testing.assert_allclose(curves, [[0.8, 2 / 3], [0.5, 0.5], [1, 1]])
    # with b left out, only a remains: every blend with weight on a is a alone; b alone has nothing
    alone = blend_curves([a, None], truth, np.array([[0.5, 0.5], [1, 0], [0, 1]]), np.array([0.5, 0.6]))
    np.testing.assert_allclose(alone[:2], [[0.5, 0.5], [0.5, 0.5]])
    assert np.isnan(alone[2]).all()


def _known_blend(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Three random maps and the mask that 0.6 a + 0.3 b + 0.1 c >= 0.5 draws: the blend
    (0.6, 0.3, 0.1) at threshold 0.5 is exactly right. No pixel lies within 4/10 of 0.5 x 255,
    so rounding cannot decide one."""
    maps = [rng.integers(0, 256, shape) for _ in range(3)]
    total = 6 * maps[0] + 3 * maps[1] + maps[2]  # ten times the blend, in 1/255
    close = np.abs(total - 1275) < 4
    maps[0][close] = np.where(maps[0][close] > 127, maps[0][close] - 20, maps[0][close] + 20)
    total = 6 * maps[0] + 3 * maps[1] + maps[2]
    assert (np.abs(total - 1275) >= 4).all()
    truth = (total >= 1275).astype(np.uint8)
    assert 0.2 < truth.mean() < 0.8, "degenerate fixture: the mask must hold car and background"
    return [m.astype(np.uint8) for m in maps], truth


def test_the_weight_search_recovers_the_weights_that_made_the_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    made = {img: _known_blend(rng, (24, 36)) for img in IMAGES}
    maps = {model: {img: made[img][0][i] for img in IMAGES} for i, model in enumerate(["a", "b", "c"])}
    paths = oof_set(tmp_path, maps, {img: made[img][1] for img in IMAGES})
    result = tune(paths, ["a", "b", "c"], ThresholdGrid(0.3, 0.7, 0.01), auto=True, weight_step=0.1)
    assert result["weights"] == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1})
    assert result["ensemble"] == {"threshold": 0.5, "dice": 1.0}
    assert result["weights_chosen"] == "auto" and result["left_out"] == []
    for model in ("a", "b", "c"):  # no model alone gets there
        assert result["models"][model]["dice"] < 0.95
    ablation = pd.read_csv(paths.out_dir / "ablation.csv").set_index("step")
    assert ablation.loc["tuned-weight ensemble", "dice"] == 1.0
    assert ablation.loc["tuned-weight ensemble", "weights"] == "a=0.6 b=0.3 c=0.1"
    assert ablation.loc["equal-weight ensemble", "dice"] < 0.98
    # chosen on either fold alone, the same weights: the nested row is exact too
    assert ablation.loc["tuned weights, chosen on the other folds", "dice"] == 1.0
    assert json.loads((paths.out_dir / "thresholds.json").read_text()) == result


def test_the_search_prefers_equal_weights_among_ties() -> None:
    # two models that agree on every pixel: every blend scores alike, equal weights win the tie
    a = np.array([[200, 10]], dtype=np.uint8)
    truth = np.array([[1, 0]])
    points = simplex_grid(2, 0.25)
    thresholds = np.array([0.3, 0.5, 0.7])
    curves = blend_curves([a, a], truth, points, thresholds)[:, None, :]  # one image
    choice = choose_blend(curves, points, thresholds)
    assert points[choice.point].tolist() == [0.5, 0.5] and thresholds[choice.threshold] == 0.5
    assert choice.dice == 1.0


def test_the_nested_choice_scores_each_fold_with_weights_chosen_on_the_others() -> None:
    # two blends, two folds, one threshold. Fold 0's images favour blend 0, fold 1's blend 1: each
    # fold is scored with the other fold's favourite, the worse one for it.
    curves = np.array([[[0.9], [0.9], [0.5], [0.5]], [[0.6], [0.6], [0.8], [0.8]]])
    half = curves[:, :, 0] - 0.1
    folds = np.array([0, 0, 1, 1])
    at_choice, at_half, choices = nested_choice(curves, half, np.eye(2), np.array([0.5]), folds)
    assert at_choice.tolist() == [0.6, 0.6, 0.5, 0.5]
    np.testing.assert_allclose(at_half, [0.5, 0.5, 0.4, 0.4])
    assert choices[0].point == 1 and choices[1].point == 0
    with pytest.raises(ValueError, match="at least two folds"):
        nested_choice(curves, half, np.eye(2), np.array([0.5]), np.zeros(4, dtype=int))


def test_a_network_near_zero_or_far_below_its_siblings_is_flagged() -> None:
    dice = {
        ("unet11", 0): 0.97,
        ("unet11", 1): 0.0,  # near zero
        ("unet11", 2): 0.96,
        ("unet1024", 0): 0.98,
        ("unet1024", 1): 0.97,
        ("unet1024", 2): 0.64,  # 0.335 below the median of 0.98 and 0.97
        ("unet", 0): 0.93,
        ("unet", 1): 0.84,  # 0.09 below 0.93 and 0.92's median 0.925: kept
        ("unet", 2): 0.92,
    }
    flagged = flag_jobs(dice, FlagRule(min_dice=0.5, max_gap=0.1))
    assert list(flagged) == [("unet1024", 2), ("unet11", 1)]
    assert "below tune.flag.min_dice 0.5" in flagged["unet11", 1]
    assert "0.335 below the median of its other folds (0.975" in flagged["unet1024", 2]
    assert flag_jobs({("m", 0): 0.7}, FlagRule(min_dice=0.5)) == {}  # no siblings to compare with


def test_a_threshold_on_the_edge_of_the_grid_is_warned_about() -> None:
    warnings = edge_warnings({"a": 0.3, "b": 0.5, ENSEMBLE: 0.7}, 0.3, 0.7)
    assert len(warnings) == 2
    assert warnings[0].startswith("a: its tuned threshold 0.30 is the grid's first value")
    assert "ensemble: its tuned threshold 0.70 is the grid's last value" in warnings[1]


def test_auto_weights_leave_out_a_network_that_learnt_nothing(tmp_path: Path) -> None:
    # "good" maps every image exactly; "dead" is exact on fold 0 and all zero on fold 1 (OOF Dice 0
    # there). Explicit weights keep it with a warning; auto leaves out dead/fold1 only.
    truth = np.zeros((12, 16), dtype=np.uint8)
    truth[3:9, 2:12] = 1
    good = {img: truth * 255 for img in IMAGES}
    dead = {img: truth * 255 if fold == 0 else np.zeros_like(truth) for img, fold in IMAGES.items()}
    paths = oof_set(tmp_path, {"good": good, "dead": dead}, dict.fromkeys(IMAGES, truth))
    grid = ThresholdGrid(0.3, 0.7, 0.1)
    given = tune(paths, ["good", "dead"], grid, {"good": 1, "dead": 1})
    assert list(given["flagged"]) == ["dead/fold1"] and given["left_out"] == []
    assert any("dead/fold1" in w and "blended in all the same" in w for w in given["warnings"])
    # equal weights on fold 1: car at 255 / 2 = 0.5 exactly, so car at 0.5 and below: Dice 1
    assert given["ensemble"] == {"threshold": 0.5, "dice": 1.0}
    auto = tune(paths, ["good", "dead"], grid, auto=True)
    assert auto["left_out"] == ["dead/fold1"]
    assert any("dead/fold1" in w and "left out of the ensemble" in w for w in auto["warnings"])
    # with dead/fold1 out, fold 1's images are good's alone whatever the weights: every blend is
    # exact, and the tie goes to equal weights
    assert auto["weights"] == {"good": 0.5, "dead": 0.5} and auto["ensemble"]["dice"] == 1.0


def test_auto_weights_refuse_a_fold_where_every_network_learnt_nothing(tmp_path: Path) -> None:
    truth = np.zeros((12, 16), dtype=np.uint8)
    truth[3:9, 2:12] = 1
    dead = {img: truth * 255 if fold == 0 else np.zeros_like(truth) for img, fold in IMAGES.items()}
    paths = oof_set(tmp_path, {"a": dead, "b": dead}, dict.fromkeys(IMAGES, truth))
    with pytest.raises(ValueError, match="every model's network of fold 1 is flagged"):
        tune(paths, ["a", "b"], ThresholdGrid(0.3, 0.7, 0.1), auto=True)
    assert not paths.out_dir.exists()
    given = tune(paths, ["a", "b"], ThresholdGrid(0.3, 0.7, 0.1))  # explicit weights: said, not refused
    assert any("every model's network of fold 1" in w for w in given["warnings"])


def test_the_ablation_table_worked_out_by_hand() -> None:
    # four images in two folds. Step "a": 0.9, 0.8 | 0.7, 0.6; "b": 0.9, 0.9 | 0.9, 0.5.
    folds = np.array([0, 0, 1, 1])
    a = Step("a", np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.8, 0.8, 0.6, 0.6]), 0.45)
    b = Step("b", np.array([0.9, 0.9, 0.9, 0.5]), np.array([0.9, 0.9, 0.9, 0.5]), None, "a", "x=1")
    table = ablation_table([a, b], folds).set_index("step")
    assert table.loc["a", "dice"] == pytest.approx(0.75)
    assert table.loc["a", "dice_fold0"] == pytest.approx(0.85) and table.loc[
        "a", "dice_fold1"
    ] == pytest.approx(0.65)
    assert table.loc["a", "dice_fold_std"] == pytest.approx(np.std([0.85, 0.65], ddof=1))
    assert table.loc["a", "dice_at_0.5"] == pytest.approx(0.7)
    assert np.isnan(table.loc["a", "gain"]) and table.loc["a", "improved"] == 0
    # b against a: changes 0, +0.1, +0.2, -0.1; fold gains 0.05 and 0.05
    assert table.loc["b", "gain"] == pytest.approx(0.05)
    assert table.loc["b", "gain_fold_std"] == pytest.approx(0.0)
    assert (table.loc["b", "improved"], table.loc["b", "worsened"]) == (2, 1)
    assert np.isnan(table.loc["b", "threshold"]) and table.loc["b", "weights"] == "x=1"
    with pytest.raises(ValueError, match="not an earlier step"):
        ablation_table([b, a], folds)


def test_the_choice_on_other_folds_skips_blends_without_a_network_for_the_fold_left_out(
    tmp_path: Path,
) -> None:
    # "good" is exact on fold 0 and all zero on fold 1 (flagged, left out there); "ok" is right
    # on the car and wrong on a strip of background everywhere. Chosen on fold 0 alone, "good"
    # alone wins, but it has no network for fold 1: fold 1 must be scored with a blend that has.
    truth = np.zeros((12, 16), dtype=np.uint8)
    truth[3:9, 2:12] = 1
    ok_map = truth * 255
    ok_map[0, :] = 255  # 16 pixels of background called car: Dice 2*60/(76+60) = 0.882
    good = {img: truth * 255 if fold == 0 else np.zeros_like(truth) for img, fold in IMAGES.items()}
    ok = dict.fromkeys(IMAGES, ok_map)
    paths = oof_set(tmp_path, {"good": good, "ok": ok}, dict.fromkeys(IMAGES, truth))
    grid = ThresholdGrid(0.3, 0.7, 0.1)
    for kwargs in ({"auto": True}, {"weights": {"good": 1, "ok": 1}}):
        result = tune(paths, ["good", "ok"], grid, weight_step=0.5, **kwargs)  # type: ignore[arg-type]
        assert list(result["flagged"]) == ["good/fold1"]
        ablation = pd.read_csv(paths.out_dir / "ablation.csv").set_index("step")
        nested = ablation.loc["tuned weights, chosen on the other folds"]
        # fold 1's images: only "ok" is there, so any usable blend is "ok" alone: 120/136
        assert nested["dice_fold1"] == pytest.approx(120 / 136)
        assert "fold 0: good=0 ok=1" in nested["weights"] or "fold 0: good=0.5 ok=0.5" in nested["weights"]


def test_one_fold_has_no_choice_on_other_folds(tmp_path: Path) -> None:
    truth = np.zeros((12, 16), dtype=np.uint8)
    truth[3:9, 2:12] = 1
    paths = oof_set(tmp_path, {"m": dict.fromkeys(IMAGES, truth * 255)}, dict.fromkeys(IMAGES, truth))
    pd.read_csv(paths.folds_path).assign(fold=0).to_csv(paths.folds_path, index=False)
    for img in IMAGES:  # every map now under fold 0
        for folder in ("oof", "oof_plain"):
            target = paths.models_dir / "m/fold0" / folder / img.replace(".jpg", ".png")
            cv2.imwrite(str(target), truth * 255)
    result = tune(paths, ["m"], ThresholdGrid(0.3, 0.7, 0.1), auto=True)
    assert result["ensemble"]["dice"] == 1.0
    steps = pd.read_csv(paths.out_dir / "ablation.csv")["step"].tolist()
    assert "tuned weights, chosen on the other folds" not in steps and steps[-1] == "final recipe"
