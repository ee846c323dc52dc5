"""Facet point-group symmetry measures and labels (spec position-free-crystals.md §2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from deepatoms.data.facet_symmetry import (
    GROUPS,
    convex_hull_2d,
    convex_hull_areas,
    facet_polygon_2d,
    polygon_area,
    symmetry_bits,
    symmetry_measures,
    symmetry_measures_batch,
)

C1, C2, C3, C4, C6, D1, D2, D3, D4, D6 = range(10)


def regular(n: int, radius: float = 1.0, phase: float = 0.3) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.column_stack([np.cos(t), np.sin(t)])


def label(bits: np.ndarray) -> str:
    return "".join(str(int(b)) for b in bits)


def random_convex(rng: np.random.Generator, n: int, aspect: float = 1.0) -> np.ndarray:
    """Vertices of a random convex polygon (points on an ellipse at random angles)."""
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    return np.column_stack([np.cos(t), aspect * np.sin(t)]) * rng.uniform(0.5, 3.0)


def hull_of(points: np.ndarray) -> np.ndarray:
    return points[ConvexHull(points).vertices]


def with_symmetry(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A random convex polygon with exactly the requested extra symmetry element."""
    p = random_convex(rng, int(rng.integers(3, 7)), aspect=rng.uniform(0.4, 1.0))
    if kind == "C2":
        return hull_of(np.vstack([p, -p]))
    if kind == "C3":
        rot = [np.exp(2j * np.pi * k / 3) * (p[:, 0] + 1j * p[:, 1]) for k in range(3)]
        z = np.concatenate(rot)
        return hull_of(np.column_stack([z.real, z.imag]))
    if kind == "D1":  # mirror line at a random angle, through a random point
        a = rng.uniform(0, np.pi)
        d = np.array([np.cos(a), np.sin(a)])
        refl = 2 * np.outer(p @ d, d) - p
        return hull_of(np.vstack([p, refl])) + rng.normal(size=2)
    raise ValueError(kind)


# -- exact shapes --------------------------------------------------------------------------------
RECT = np.array([[0, 0], [2, 0], [2, 1], [0, 1.0]])
RHOMBUS = np.array([[np.sqrt(2) / 2, 0], [0, 0.5], [-np.sqrt(2) / 2, 0], [0, -0.5]])
SCALENE = np.array([[0, 0], [3, 0], [1, 2.0]])
TABLE = [
    ("triangle", regular(3), [1, 0.5, 1, 0.4330, 0.5, 1, 0.5, 1, 0.4330, 0.5], "010010100"),
    ("square", regular(4), [1, 1, 0.6667, 1, 0.6667, 1, 1, 0.6667, 1, 0.6667], "101011010"),
    (
        "pentagon",
        regular(5),
        [1, 0.8090, 0.7794, 0.7694, 0.7624, 1, 0.8090, 0.7794, 0.7694, 0.7624],
        "000010000",
    ),
    ("hexagon", regular(6), [1, 1, 1, 0.8660, 1, 1, 1, 1, 0.8660, 1], "110111101"),
    ("rect 2:1", RECT, [1, 1, 0.58, 0.5714, 0.58, 1, 1, 0.58, 0.5714, 0.58], "100011000"),
    (
        "fcc rhombus",
        RHOMBUS,
        [1, 1, 0.5443, 0.7071, 0.5443, 1, 1, 0.5443, 0.7071, 0.5443],
        "100011000",
    ),
    (
        "scalene",
        SCALENE,
        [1, 0.5, 0.6495, 0.3971, 0.3584, 0.7211, 0.4507, 0.5191, 0.3744, 0.3304],
        "000000000",
    ),
]


@pytest.mark.parametrize(("name", "poly", "expected", "bits"), TABLE, ids=[t[0] for t in TABLE])
def test_exact_shapes_match_spec_table(name, poly, expected, bits):
    m = symmetry_measures(poly)
    np.testing.assert_allclose(m, expected, atol=1e-3)
    assert label(symmetry_bits(m)) == bits
    # the authors' first-axis rule agrees on these shapes
    np.testing.assert_allclose(symmetry_measures(poly, axis_rule="first"), expected, atol=1e-3)


def test_batch_equals_single_and_handles_padding():
    polys = [regular(3), RECT, regular(6), SCALENE, regular(5)]
    n_v = max(len(p) for p in polys)
    padded = np.zeros((len(polys), n_v, 2))
    for f, p in enumerate(polys):
        padded[f, : len(p)] = p
        padded[f, len(p) :] = 99.0  # garbage beyond counts must be ignored
    counts = np.array([len(p) for p in polys])
    batch = symmetry_measures_batch(padded, counts)
    single = np.stack([symmetry_measures(p) for p in polys])
    np.testing.assert_allclose(batch, single, atol=1e-12)


@pytest.mark.parametrize("n", range(3, 13))
def test_regular_ngon_groups(n):
    m = symmetry_measures(regular(n, radius=2.0, phase=0.7))
    expected = [1 if n % k == 0 else 0 for k in (2, 3, 4, 6)] * 2
    expected.insert(4, 1)  # D1: every regular polygon has mirror axes
    assert label(symmetry_bits(m)) == label(expected)
    np.testing.assert_allclose(m[5:], m[:5], atol=1e-9)  # mirror axis present: D_n = C_n
    assert np.all(m[[C2, C3, C4, C6]][np.array(expected[:4]) == 0] < 0.99)


# -- independent brute-force reference -------------------------------------------------------------
def reference_measures(poly: np.ndarray) -> np.ndarray:
    """Direct implementation of docs/position_free_crystals.md §2 with scipy hulls and explicit 2×2 matrices."""
    p = hull_of(np.asarray(poly, float))  # counter-clockwise
    x, y = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    c = x * y1 - x1 * y
    area = c.sum() / 2
    centroid = np.array([((x + x1) * c).sum(), ((y + y1) * c).sum()]) / (6 * area)
    p = p - centroid
    x, y = p[:, 0], p[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    c = x * y1 - x1 * y
    jxx = (c * (x**2 + x * x1 + x1**2)).sum() / 12
    jyy = (c * (y**2 + y * y1 + y1**2)).sum() / 12
    jxy = (c * (x * y1 + 2 * x * y + 2 * x1 * y1 + x1 * y)).sum() / 24
    lam, vec = np.linalg.eigh(np.array([[jxx, jxy], [jxy, jyy]]))
    if lam[1] - lam[0] > 0.1 * lam[1]:
        axes = [np.arctan2(v[1], v[0]) for v in vec.T]
    else:
        mids = 0.5 * (p + np.roll(p, -1, axis=0))
        axes = [np.arctan2(v[1], v[0]) for v in np.vstack([mids, p])]

    def rot(t):
        return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])

    def refl(t):
        return np.array([[np.cos(2 * t), np.sin(2 * t)], [np.sin(2 * t), -np.cos(2 * t)]])

    def m(mats):
        return area / ConvexHull(np.vstack([p @ g.T for g in mats])).volume

    out = [1.0]
    out += [m([rot(2 * np.pi * k / n) for k in range(n)]) for n in (2, 3, 4, 6)]
    for n in (1, 2, 3, 4, 6):
        vals = []
        for a in axes:
            mats = [rot(2 * np.pi * k / n) for k in range(n)]
            mats += [refl(a + np.pi * k / n) for k in range(n)]
            vals.append(m(mats))
        out.append(max(vals))
    return np.array(out)


def test_matches_brute_force_reference_on_random_polygons():
    rng = np.random.default_rng(7)
    polys = [random_convex(rng, int(rng.integers(3, 10)), rng.uniform(0.3, 1.0)) for _ in range(60)]
    polys += [regular(n) + rng.normal(scale=0.01, size=(n, 2)) for n in range(3, 9)]  # fallback
    polys += [with_symmetry(rng, k) for k in ("C2", "C3", "D1") for _ in range(5)]
    n_v = max(len(p) for p in polys)
    padded = np.zeros((len(polys), n_v, 2))
    for f, p in enumerate(polys):
        padded[f, : len(p)] = p
    got = symmetry_measures_batch(padded, np.array([len(p) for p in polys]))
    ref = np.stack([reference_measures(p) for p in polys])
    np.testing.assert_allclose(got, ref, atol=1e-9)


# -- identities ----------------------------------------------------------------------------------
def check_identities(m: np.ndarray, tol: float = 1e-9) -> None:
    assert m[C1] == 1.0
    assert np.all((m > 0) & (m <= 1 + tol))
    assert m[C4] <= m[C2] + tol
    assert m[C6] <= min(m[C2], m[C3]) + tol
    for d, c in ((D2, C2), (D3, C3), (D4, C4), (D6, C6)):
        assert m[d] <= m[c] + tol
        assert m[d] <= m[D1] + tol
    assert m[D4] <= m[D2] + tol
    assert m[D6] <= min(m[D2], m[D3]) + tol


def test_identities_on_random_convex_polygons():
    rng = np.random.default_rng(3)
    for _ in range(40):
        check_identities(symmetry_measures(random_convex(rng, int(rng.integers(3, 12)))))


@pytest.mark.parametrize("kind", ["C2", "C3", "D1"])
def test_implications_of_exact_symmetry(kind):
    rng = np.random.default_rng({"C2": 1, "C3": 2, "D1": 3}[kind])
    for _ in range(10):
        m = symmetry_measures(with_symmetry(rng, kind))
        check_identities(m)
        if kind == "C2":
            assert m[C2] == pytest.approx(1, abs=1e-9)
            np.testing.assert_allclose(m[[C6, D2, D6]], m[[C3, D1, D3]], atol=1e-9)
        elif kind == "C3":
            assert m[C3] == pytest.approx(1, abs=1e-9)
            np.testing.assert_allclose(m[[C6, D3, D6]], m[[C2, D1, D2]], atol=1e-9)
        else:
            assert m[D1] == pytest.approx(1, abs=1e-9)
            np.testing.assert_allclose(m[[D2, D3, D4, D6]], m[[C2, C3, C4, C6]], atol=1e-9)


def test_invariance_to_similarity_transforms_and_vertex_order():
    rng = np.random.default_rng(11)
    for _ in range(15):
        p = random_convex(rng, int(rng.integers(3, 9)), aspect=rng.uniform(0.3, 1.0))
        ref = symmetry_measures(p)
        t = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        variants = [
            p @ rot.T,
            p + rng.normal(scale=10, size=2),
            p * rng.uniform(0.01, 100),
            np.roll(p, int(rng.integers(1, len(p))), axis=0),
            p[::-1],
            p[rng.permutation(len(p))],
            p * np.array([1, -1]),  # mirror image
        ]
        for q in variants:
            np.testing.assert_allclose(symmetry_measures(q), ref, atol=1e-9)


def test_first_axis_rule_never_exceeds_max_rule():
    rng = np.random.default_rng(5)
    polys = [regular(n) + rng.normal(scale=0.02, size=(n, 2)) for n in (3, 4, 5, 6, 7, 8)] * 3
    for p in polys:
        m_max, m_first = symmetry_measures(p), symmetry_measures(p, axis_rule="first")
        np.testing.assert_allclose(m_first[:5], m_max[:5], atol=1e-12)  # C groups identical
        assert np.all(m_first[5:] <= m_max[5:] + 1e-12)
        assert m_first[D1] == pytest.approx(m_max[D1], abs=1e-3)  # first axis ≥ 0.9999 or best D1


def test_symmetry_bits_threshold_and_order():
    m = np.array([1, 0.995, 0.98, 0.99, 0.5, 1, 0.2, 0.3, 0.4, 0.989999])
    np.testing.assert_array_equal(symmetry_bits(m), [1, 0, 1, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(symmetry_bits(m, threshold=0.5), [1, 1, 1, 1, 1, 0, 0, 0, 1])
    assert symmetry_bits(np.ones((4, 3, 10))).shape == (4, 3, 9)
    assert GROUPS[1:] == ("C2", "C3", "C4", "C6", "D1", "D2", "D3", "D4", "D6")
    with pytest.raises(ValueError, match="10 entries"):
        symmetry_bits(np.ones(9))


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="n ≥ 3"):
        symmetry_measures(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="zero area"):
        symmetry_measures(np.array([[0, 0], [1, 1], [2, 2.0]]))
    with pytest.raises(ValueError, match="axis_rule"):
        symmetry_measures(regular(4), axis_rule="best")
    with pytest.raises(ValueError, match="valid vertices"):
        symmetry_measures_batch(np.zeros((1, 4, 2)), np.array([2]))


# -- 2-D geometry helpers ---------------------------------------------------------------------------
def test_convex_hull_2d_and_polygon_area():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2.0]])
    extra = np.array([[1, 1], [1, 0], [2, 1], [0, 0], [0.5, 1.5]])  # interior, collinear, duplicate
    hull = convex_hull_2d(np.vstack([square, extra]))
    assert len(hull) == 4
    assert {tuple(v) for v in hull} == {tuple(v) for v in square}
    (ax, ay), (bx, by) = hull[1] - hull[0], hull[2] - hull[1]
    assert ax * by - ay * bx > 0  # counter-clockwise
    assert polygon_area(hull) == pytest.approx(4.0)
    assert polygon_area(hull[::-1]) == pytest.approx(4.0)
    assert len(convex_hull_2d(np.array([[0, 0], [1, 1], [2, 2.0]]))) == 2  # collinear: no area


def test_batched_hull_areas_match_scipy():
    rng = np.random.default_rng(2)
    sets = [rng.normal(size=(40, 30, 2))]
    sets.append(np.round(rng.normal(size=(40, 30, 2)) * 2) / 2)  # duplicates and collinear points
    dup = rng.uniform(-1, 1, size=(40, 30, 2))
    dup[:, :12] = dup[:, :1]  # many exact duplicates
    sets.append(dup)
    z = rng.normal(size=(40, 5)) + 1j * rng.normal(size=(40, 5))  # 6-fold symmetric copies
    z = (z[:, None, :] * np.exp(2j * np.pi * np.arange(6) / 6)[None, :, None]).reshape(40, -1)
    sets.append(np.stack([z.real, z.imag], axis=-1))
    for pts in sets:
        ref = np.array([ConvexHull(p).volume for p in pts])
        np.testing.assert_allclose(convex_hull_areas(pts), ref, rtol=1e-12, atol=1e-12)
    line = np.zeros((1, 5, 2))
    line[0, :, 0] = np.arange(5)
    assert convex_hull_areas(line)[0] == pytest.approx(0.0, abs=1e-12)


def test_facet_polygon_2d_projects_and_orders():
    rng = np.random.default_rng(4)
    poly = random_convex(rng, 6, aspect=0.6)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    normal = q[:, 2] * 3.0
    verts3d = poly[:, :1] * q[:, 0] + poly[:, 1:] * q[:, 1] + 5.0 * q[:, 2] + 1.0
    out = facet_polygon_2d(verts3d[rng.permutation(6)], normal)
    assert out.shape == (6, 2)
    assert polygon_area(out) == pytest.approx(polygon_area(poly))
    signed = 0.5 * np.sum(out[:, 0] * np.roll(out[:, 1], -1) - np.roll(out[:, 0], -1) * out[:, 1])
    assert signed > 0  # counter-clockwise about +normal, so vertices are in boundary order
    np.testing.assert_allclose(
        np.sort(np.linalg.norm(out - np.roll(out, -1, 0), axis=1)),
        np.sort(np.linalg.norm(poly - np.roll(poly, -1, 0), axis=1)),
    )
    np.testing.assert_allclose(symmetry_measures(out), symmetry_measures(poly), atol=1e-9)
    flipped = facet_polygon_2d(verts3d, -normal)
    assert (
        0.5
        * np.sum(
            flipped[:, 0] * np.roll(flipped[:, 1], -1) - np.roll(flipped[:, 0], -1) * flipped[:, 1]
        )
        > 0
    )
    with pytest.raises(ValueError, match="non-zero"):
        facet_polygon_2d(verts3d, np.zeros(3))


def test_nearly_degenerate_rhombus_keeps_the_subgroup_order():
    """A real Perov-5 facet (near-duplicate vertices): the fast batched hull once returned 0 for a
    D3 union here, which made m(D3) = 1 > m(C3). The measures must obey m(D_n) ≤ m(C_n)."""
    poly = np.array(
        [[-1.5133015657531583, -1.4936965137546387e-06],
         [0.00025828108567562845, -1.0689281728542468],
         [0.002059219868456445, -1.0689277264552335],
         [1.510984064799028, -3.793914052863112e-06],
         [1.5109840818940203, 3.7939140531366817e-06],
         [0.002059219868454718, 1.0689277264552337],
         [0.00025828108567578544, 1.0689281728542464],
         [-1.5133015828481509, 1.4936965134215718e-06]]
    )  # fmt: skip
    m = symmetry_measures(poly)
    c = dict(zip(("C1", "C2", "C3", "C4", "C6", "D1", "D2", "D3", "D4", "D6"), m, strict=True))
    for n in ("2", "3", "4", "6"):
        assert c["D" + n] <= c["C" + n] + 1e-6
    assert c["D3"] == pytest.approx(0.5445, abs=1e-3)
    np.testing.assert_allclose(symmetry_measures_batch(poly[None], np.array([8]))[0], m)
