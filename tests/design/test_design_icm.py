"""ICM inverse design (docs/grammar_vae.md §6) on hand-made latent models with known answers.

The latent model: 2-D latent points, strings ``"p{a}_{b}"`` for the integer lattice point
(a, b) nearest to z (decodes outside |a|, |b| ≤ 4 are "unfinished"), an encoder that maps a
string back to its lattice point (an exact inverse on the lattice) and regressors f_a(z) = z₀,
f_b(z) = z₁, so the objective's optimum for targets (t_a, t_b) is the string p{t_a}_{t_b}.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepatoms.design.icm import iterated_conditional_modes, objective

LIMIT = 4


def decode(z: np.ndarray) -> list[str | None]:
    q = np.rint(z).astype(int)
    return [None if np.abs(p).max() > LIMIT else f"p{p[0]}_{p[1]}" for p in q]


def encode(strings) -> np.ndarray:
    return np.array([[float(v) for v in s[1:].split("_")] for s in strings])


def predict(z: np.ndarray) -> dict[str, np.ndarray]:
    return {"a": z[:, 0].astype(float), "b": z[:, 1].astype(float)}


def always_valid(s: str) -> bool:
    return True


def run(z0, targets, **kw):
    kw.setdefault("is_valid", always_valid)
    return iterated_conditional_modes(z0, decode, encode, predict, targets, **kw)


def test_exact_inverse_population_is_a_fixed_point_after_one_iteration():
    z0 = np.random.default_rng(0).normal(size=(500, 2)) * 1.5
    one = run(z0, {"a": 1.0, "b": 0.0}, n_iter=1, top_k=1000)
    four = run(z0, {"a": 1.0, "b": 0.0}, n_iter=4, top_k=1000)
    assert one.population_strings == four.population_strings
    np.testing.assert_array_equal(one.population_z, four.population_z)
    np.testing.assert_array_equal(one.population_z, np.rint(one.population_z))  # lattice points
    for stats in four.history[1:]:  # iterations 2-4 change nothing
        assert stats.population == stats.kept == len(one.population_strings)
        assert stats.duplicate == stats.unfinished == stats.invalid == stats.training == 0
    first = four.history[0]
    assert first.population == 500
    assert first.unfinished + first.duplicate + first.kept == 500


def test_filters_are_counted_exactly_and_the_output_is_sorted():
    z0 = np.array(
        [
            [0.1, 0.2],  # p0_0
            [0.2, -0.1],  # p0_0 again: duplicate
            [9.0, 9.0],  # unfinished
            [1.0, 1.0],  # p1_1: a training string
            [2.0, 0.0],  # p2_0: invalid
            [-1.0, 2.2],  # p-1_2
            [-0.9, 1.6],  # p-1_2 again
        ]
    )
    res = run(
        z0,
        {"a": -1.0, "b": 2.0},
        is_valid=lambda s: s != "p2_0",
        exclude={"p1_1"},
        n_iter=3,
        chunk=2,  # chunk borders do not change the result
    )
    h = res.history[0]
    assert (h.population, h.unfinished, h.invalid, h.duplicate, h.training, h.kept) == (
        7, 1, 1, 2, 1, 2,
    )  # fmt: skip
    assert h.best == 0.0 and h.median == 2.5  # objectives 0 and 5
    assert res.strings == ["p-1_2", "p0_0"]
    np.testing.assert_array_equal(res.objective, [0.0, 5.0])
    np.testing.assert_array_equal(res.z, [[-1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_array_equal(res.predictions["a"], [-1.0, 0.0])
    assert res.targets == {"a": -1.0, "b": 2.0}


def test_no_duplicates_no_training_strings_at_most_top_k():
    z0 = np.random.default_rng(1).normal(size=(3000, 2)) * 2
    exclude = {"p0_0", "p1_0", "p0_1"}
    res = run(z0, {"a": 0.0, "b": 0.0}, exclude=exclude, top_k=7, n_iter=2)
    assert len(res.strings) == 7
    assert len(set(res.strings)) == 7 and not set(res.strings) & exclude
    assert np.all(np.diff(res.objective) >= 0)
    np.testing.assert_allclose(res.objective, objective(res.predictions, {"a": 0, "b": 0}))
    # the optimum p0_0 and its neighbours p1_0, p0_1 are excluded: next best are at J = 1, 2
    assert res.objective[:2].tolist() == [1.0, 1.0]
    assert set(res.strings[:2]) == {"p-1_0", "p0_-1"}


def test_finds_the_known_optimum():
    z0 = np.random.default_rng(2).normal(size=(2000, 2))
    res = run(z0, {"a": 2.0, "b": -1.0}, top_k=100)
    assert res.strings[0] == "p2_-1" and res.objective[0] == 0.0
    assert len(res.strings) <= 100
    res = run(z0, {"a": 2.0, "b": -1.0}, exclude={"p2_-1"})
    assert "p2_-1" not in res.strings and res.objective[0] == 1.0


def test_key_merges_equivalent_strings_and_unencodable_strings_are_dropped():
    # key: the sign of a is irrelevant → p-1_0 and p1_0 are duplicates (the first one is kept)
    z0 = np.array([[-1.0, 0.0], [1.0, 0.0], [3.0, 3.0], [0.0, 2.0]])

    def picky_encode(strings):
        if "p3_3" in strings:
            raise ValueError("cannot parse 'p3_3'")
        return encode(strings)

    res = iterated_conditional_modes(
        z0, decode, picky_encode, predict, {"a": 0.0}, always_valid,
        key=lambda s: s.replace("-", ""), n_iter=1,
    )  # fmt: skip
    h = res.history[0]
    assert (h.duplicate, h.unencodable, h.kept) == (1, 1, 2)
    assert res.strings == ["p0_2", "p-1_0"] and res.keys == ["p0_2", "p1_0"]


def test_empty_population_stops_early():
    z0 = np.full((5, 2), 10.0)  # all unfinished
    res = run(z0, {"a": 0.0}, n_iter=5)
    assert len(res.history) == 1 and res.history[0].unfinished == 5
    assert res.strings == [] and len(res.objective) == 0


def test_a_dying_population_returns_the_last_non_empty_one():
    def far_encode(strings):  # encoder means that decode to nothing (unfinished)
        return encode(strings) + 100.0

    z0 = np.array([[0.0, 0.0], [1.0, 1.0]])
    res = iterated_conditional_modes(
        z0, decode, far_encode, predict, {"a": 100.0, "b": 100.0}, always_valid, n_iter=5
    )
    assert [h.kept for h in res.history] == [2, 0]
    assert res.strings == ["p0_0", "p1_1"]  # ẑ = (100, 100) and (101, 101)
    np.testing.assert_array_equal(res.objective, [0.0, 2.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": {"c": 1.0}}, r"no regressor for target\(s\) \['c'\]; the regressors predict"),
        ({"targets": {}}, "at least one target"),
        ({"z0": np.zeros(3)}, r"non-empty \[N, d\] array"),
        ({"top_k": 0}, "top_k must be at least 1"),
        ({"decode": lambda z: ["p0_0"]}, "decode returned 1 strings for 3 latent points"),
    ],
)
def test_bad_inputs_say_what_is_wrong(kwargs, message):
    args = {"z0": np.zeros((3, 2)), "decode": decode, "encode": encode, "predict": predict,
            "targets": {"a": 0.0}, "is_valid": always_valid}  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        iterated_conditional_modes(**args)
