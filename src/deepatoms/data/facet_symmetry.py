"""Point-group symmetry measures and 9-bit labels of convex polygons (Voronoi facets).

docs/position_free_crystals.md §2 (Paper B §II.A; Jørgensen 2019 thesis §3.2), adapted from the
Heijmans–Tuzikov symmetry measure: for a 2-D point group G acting about the polygon's area centroid,

    m(G) = area(P) / area(conv(∪_{g∈G} g·P)),                                   (docs/position_free_crystals.md §2, step 3)

so m(G) = 1 exactly when P has the symmetry G and m(G) < 1 otherwise. Ten groups are measured, in the
order ``GROUPS`` = C1, C2, C3, C4, C6, D1, D2, D3, D4, D6; the binary label drops the trivial C1 and
keeps [C2, C3, C4, C6, D1, D2, D3, D4, D6] (bit = m ≥ 0.99, docs/position_free_crystals.md §2 step 6).

Everything is batched: a crystal has hundreds of facets, so the facets of one structure are
measured together and all convex hulls of one group come from one vectorised pass
(``convex_hull_areas``; ``convex_hull_2d``, Andrew's monotone chain, is the plain per-polygon
reference and the fallback for rows the vectorised pass cannot certify). Points are handled as
complex numbers (rotation = multiplication by e^{iφ}, reflection = conjugation). For D_n the
maximum over candidate mirror axes is found by branch and bound with the exact upper bounds
m(D_n, θ) ≤ m(C_n) and m(D_n, θ) ≤ m(D1, θ') for every mirror axis θ' of D_n(θ).
"""

from __future__ import annotations

import numpy as np

GROUPS: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C6", "D1", "D2", "D3", "D4", "D6")
LABEL_GROUPS: tuple[str, ...] = GROUPS[1:]
AXIS_RULES: tuple[str, ...] = ("max", "first")

_ORDERS = (2, 3, 4, 6)  # C_n and D_n orders measured (C1 ≡ 1)
_D_ORDERS = (1, 2, 3, 4, 6)
_DEGENERACY_TOL = 0.10  # relative eigenvalue gap of the second moment (Decisions)
_FIRST_AXIS_D1 = 0.9999  # authors' acceptance level for the "first" axis rule (§2 step 4)
_ANGLE_EPS = 1e-9  # rad; points closer in angle than this are one ray of the hull
_CROSS_TOL = 1e-12  # relative to the squared radius of a point set


# -- plain 2-D geometry ---------------------------------------------------------------------------
def polygon_area(vertices: np.ndarray) -> float:
    """Unsigned area (length² units, e.g. Å²) of a simple polygon given in boundary order [n, 2]."""
    v = np.asarray(vertices, dtype=np.float64)
    x, y = v[:, 0], v[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def convex_hull_2d(points: np.ndarray) -> np.ndarray:
    """Convex hull [h, 2] of a 2-D point set, counter-clockwise, collinear points dropped.

    Andrew's monotone chain (O(m log m)); fewer than three non-collinear points give the extreme
    points only (area 0).
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = sorted(set(map(tuple, p.tolist())))
    if len(pts) <= 2:
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2)

    def cross(o: tuple, a: tuple, b: tuple) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple] = []
    for q in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0:
            lower.pop()
        lower.append(q)
    upper: list[tuple] = []
    for q in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0:
            upper.pop()
        upper.append(q)
    return np.asarray(lower[:-1] + upper[:-1], dtype=np.float64)


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row-wise gather of a [B, M, k] array with [B, M] indices."""
    return np.take_along_axis(a, idx[..., None], axis=1)


def convex_hull_areas(points: np.ndarray) -> np.ndarray:
    """Areas [B] of the convex hulls of B point sets given as [B, M, 2] (length² units).

    Vectorised over rows; duplicate points are allowed (use them for padding). See
    ``_hull_areas_complex`` for the method.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ValueError(f"points must have shape [B, M, 2], got {pts.shape}")
    return _hull_areas_complex(pts[..., 0] + 1j * pts[..., 1])


def _hull_areas_complex(z: np.ndarray) -> np.ndarray:
    """Convex-hull areas [B] of point sets given as complex numbers x + iy, [B, M].

    Each row is centred on its mean (strictly inside its hull unless the set is degenerate),
    sorted by angle and reduced to the farthest point per ray; then the points lying in the
    triangle (origin, previous, next) are removed in simultaneous passes until the star polygon is
    convex, and its area is the hull area. Rows not certified convex after the passes are redone
    with ``convex_hull_2d``. cross(a, b) = Im(conj(a)·b).
    """
    n_rows, m = z.shape
    if n_rows == 0:
        return np.zeros(0)
    z0 = z
    z = z - z.mean(axis=1, keepdims=True)
    r2 = z.real**2 + z.imag**2
    tol = _CROSS_TOL * np.maximum(r2.max(axis=1), np.finfo(float).tiny)[:, None]
    ang = np.angle(z)
    order = np.argsort(ang, axis=1)
    ang = np.take_along_axis(ang, order, axis=1)
    r2 = np.take_along_axis(r2, order, axis=1)
    z = np.take_along_axis(z, order, axis=1)

    # one point per ray: the farthest among points whose angles agree within _ANGLE_EPS
    r2 = r2.ravel()
    new = np.ones((n_rows, m), bool)
    new[:, 1:] = np.diff(ang, axis=1) > _ANGLE_EPS
    new = new.ravel()
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    is_max = r2 == np.maximum.reduceat(r2, starts)[run]
    seen = np.cumsum(is_max)
    keep = is_max & (seen - (seen[starts] - is_max[starts])[run] == 1)  # first maximum per run
    # the first and last runs of a row are one ray when the angles wrap around ±π
    wrap = np.flatnonzero((ang[:, 0] + 2 * np.pi - ang[:, -1]) <= _ANGLE_EPS)
    run_a, run_b = run[wrap * m], run[wrap * m + m - 1]
    wrap, run_a, run_b = wrap[run_a != run_b], run_a[run_a != run_b], run_b[run_a != run_b]
    kept_at = np.flatnonzero(keep)  # one kept point per run, in run order
    a, b = kept_at[run_a], kept_at[run_b]
    keep[np.where(r2[a] >= r2[b], b, a)] = False
    keep = keep.reshape(n_rows, m)

    cols = np.arange(m)[None, :]
    rows = np.arange(n_rows)
    for _ in range(m + 1):
        cnt = keep.sum(axis=1)
        packed = np.zeros_like(z)  # kept points first, in angular order
        packed[np.nonzero(keep)[0], (np.cumsum(keep, axis=1) - 1)[keep]] = z[keep]
        z = packed
        valid = cols < cnt[:, None]
        last = np.maximum(cnt - 1, 0)
        prv, nxt = np.roll(z, 1, axis=1), np.roll(z, -1, axis=1)
        prv[:, 0] = z[rows, last]
        nxt[rows, last] = z[:, 0]
        turn = (np.conj(z - prv) * (nxt - z)).imag
        inside = (turn <= tol) & ((np.conj(prv) * nxt).imag > 0)  # in triangle (0, prev, next)
        drop = valid & inside & (cnt[:, None] > 2)
        if not drop.any():
            break
        keep = valid & ~drop
    area = 0.5 * np.where(valid, (np.conj(z) * nxt).imag, 0.0).sum(axis=1)
    area[cnt < 3] = 0.0
    unsure = drop.any(axis=1) | np.any(valid & (turn < -tol), axis=1)
    for row in np.flatnonzero(unsure & (cnt >= 3)):  # not certified convex: exact fallback (rare)
        area[row] = polygon_area(convex_hull_2d(np.column_stack([z0[row].real, z0[row].imag])))
    return area


# -- polygons of facets ---------------------------------------------------------------------------
def _plane_basis(normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (u, w, n) with u, w spanning the plane ⟂ n, for normals [F, 3]."""
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    helper = np.eye(3)[np.argmin(np.abs(n), axis=1)]
    u = np.cross(n, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = np.cross(n, u)
    return u, w, n


def facet_polygons_2d(
    vertices3d: np.ndarray, counts: np.ndarray, normals: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Batched ``facet_polygon_2d`` for F padded facets.

    ``vertices3d`` [F, V, 3] (Å) holds ``counts[f]`` valid vertices first in each row; ``normals``
    [F, 3] are the facet normals (any length). Returns the in-plane polygons [F, V, 2] (Å, relative
    to the vertex mean, counter-clockwise about +normal, padded by repeating the last vertex) and
    the ordering [F, V] such that ``vertices3d[f, order[f]]`` is the ordered, padded 3-D facet.
    """
    v = np.asarray(vertices3d, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    n_v = v.shape[1]
    if np.any(counts < 1) or np.any(counts > n_v):
        raise ValueError(f"facet vertex counts must lie in 1..{n_v}, got {counts.tolist()}")
    u, w, _ = _plane_basis(np.asarray(normals, dtype=np.float64))
    valid = np.arange(n_v)[None, :] < counts[:, None]
    centre = np.where(valid[..., None], v, 0.0).sum(axis=1) / counts[:, None]
    rel = v - centre[:, None, :]
    xy = np.stack([np.einsum("fvk,fk->fv", rel, u), np.einsum("fvk,fk->fv", rel, w)], axis=-1)
    ang = np.where(valid, np.arctan2(xy[..., 1], xy[..., 0]), np.inf)
    order = np.argsort(ang, axis=1, kind="stable")
    order = np.where(valid, order, np.take_along_axis(order, (counts - 1)[:, None], axis=1))
    return _take(xy, order), order


def facet_polygon_2d(vertices3d: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Project a planar convex 3-D facet [n, 3] (Å) into its plane and order it by angle.

    The plane basis (u, w) is orthonormal and perpendicular to ``normal``, so (u, w, normal) is
    right-handed and the returned polygon [n, 2] (Å, centred on the vertex mean) runs
    counter-clockwise seen from the tip of ``normal`` (docs/position_free_crystals.md §2, step 1).
    """
    v = np.asarray(vertices3d, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
        raise ValueError(f"a facet needs at least 3 vertices as an [n, 3] array, got {v.shape}")
    nrm = np.asarray(normal, dtype=np.float64).reshape(1, 3)
    if not np.linalg.norm(nrm) > 0:
        raise ValueError("the facet normal must be a non-zero 3-vector")
    poly, _ = facet_polygons_2d(v[None], np.array([len(v)]), nrm)
    return poly[0]


# -- symmetry measures ----------------------------------------------------------------------------
def _prepare(polygons: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort vertices counter-clockwise, pad by repetition, centre on the area centroid.

    Returns the centred polygons as complex numbers [F, V] and their areas [F].
    """
    p = np.asarray(polygons, dtype=np.float64)
    n_v = p.shape[1]
    z = p[..., 0] + 1j * p[..., 1]
    valid = np.arange(n_v)[None, :] < counts[:, None]
    rel = z - np.where(valid, z, 0).sum(axis=1, keepdims=True) / counts[:, None]
    ang = np.where(valid, np.angle(rel), np.inf)
    order = np.argsort(ang, axis=1, kind="stable")
    order = np.where(valid, order, np.take_along_axis(order, (counts - 1)[:, None], axis=1))
    q = np.take_along_axis(rel, order, axis=1)
    nxt = np.roll(q, -1, axis=1)  # padded edges have zero length; the closing edge is the true one
    cr = (np.conj(q) * nxt).imag
    area = 0.5 * cr.sum(axis=1)
    scale = np.abs(rel).max(axis=1)
    bad = np.flatnonzero(~(area > 1e-12 * scale**2))
    if len(bad):
        raise ValueError(
            f"polygon(s) {bad[:5].tolist()} have (near) zero area; symmetry measures need "
            "non-degenerate convex polygons with at least 3 vertices"
        )
    centroid = (cr * (q + nxt)).sum(axis=1) / (6 * area)  # §2 step 2
    return q - centroid[:, None], area


def _candidate_axes(q: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mirror-axis candidates (docs/position_free_crystals.md §2 step 4), flattened as (facet index, angle, principal).

    Second moment of area J = ∫ r rᵀ dA about the centroid; if its eigenvalues differ by more than
    10 % (relative to the larger) the candidates are the two principal axes, otherwise the axes
    through the centroid and each edge midpoint, then each vertex (the authors' order).
    """
    n_v = q.shape[1]
    x, y = q.real, q.imag
    x1, y1 = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    c = x * y1 - x1 * y
    jxx = (c * (x * x + x * x1 + x1 * x1)).sum(axis=1) / 12
    jyy = (c * (y * y + y * y1 + y1 * y1)).sum(axis=1) / 12
    jxy = (c * (x * y1 + 2 * x * y + 2 * x1 * y1 + x1 * y)).sum(axis=1) / 24
    half_gap = np.hypot(0.5 * (jxx - jyy), jxy)
    principal = 2 * half_gap > _DEGENERACY_TOL * (0.5 * (jxx + jyy) + half_gap)
    phi = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # major principal axis

    cols = np.arange(n_v)[None, :]
    mid = 0.5 * (q + np.take_along_axis(q, (cols + 1) % counts[:, None], axis=1))
    theta = np.concatenate([np.angle(mid), np.angle(q)], axis=1)
    valid = np.concatenate([cols < counts[:, None]] * 2, axis=1)
    theta[principal, 0] = phi[principal]
    theta[principal, 1] = phi[principal] + 0.5 * np.pi
    valid[principal] = False
    valid[principal, :2] = True
    f_idx, k_idx = np.nonzero(valid)  # row-major: candidates of a facet stay in order
    return f_idx, theta[f_idx, k_idx], principal


def _group_measure(
    q: np.ndarray, area: np.ndarray, f_idx: np.ndarray, n: int, theta: np.ndarray | None
) -> np.ndarray:
    """m(C_n) (``theta`` None) or m(D_n aligned at ``theta``) for the facets ``f_idx`` [P].

    D_n = rotations by 2πk/n plus reflections across θ₀ + kπ/n; a reflection across the axis at
    angle α maps z → e^{2iα}·conj(z) (docs/position_free_crystals.md §2).
    """
    if len(f_idx) == 0:
        return np.zeros(0)
    z = q[f_idx]
    rot = np.exp(2j * np.pi * np.arange(n) / n)
    copies = z[:, None, :] * rot[None, :, None]
    if theta is not None:
        refl = np.exp(2j * (theta[:, None] + np.pi * np.arange(n) / n))
        copies = np.concatenate([copies, np.conj(z)[:, None, :] * refl[:, :, None]], axis=1)
    pts = copies.reshape(len(f_idx), -1)
    hull = _hull_areas_complex(pts)
    # The hull of the union contains P, so hull ≥ area(P); rows where the fast hull falls short
    # (near-duplicate points on nearly regular facets can defeat it) are redone exactly.
    short = ~(hull >= area[f_idx] * (1.0 - 1e-9))
    for r in np.flatnonzero(short):
        hull[r] = polygon_area(convex_hull_2d(np.stack([pts[r].real, pts[r].imag], axis=1)))
    return np.minimum(area[f_idx] / hull, 1.0)


def _axis_classes(f_idx: np.ndarray, theta: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Group candidate axes that give the same D_n (angles equal modulo π/n within 1e-7 rad).

    Returns the order that sorts candidates by (facet, class), the class id of every sorted
    candidate and the start of each class in that order.
    """
    period = np.pi / n
    a = np.mod(theta, period)
    a = np.where(a > period - 1e-7, a - period, a)
    order = np.lexsort((a, f_idx))
    fs, a_s = f_idx[order], a[order]
    new = np.ones(len(order), bool)
    new[1:] = (fs[1:] != fs[:-1]) | (np.diff(a_s) > 1e-7)
    return order, np.cumsum(new) - 1, np.flatnonzero(new)


def _best_per_facet(f_cls: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the highest-scoring entry per facet (entries grouped by facet ``f_cls``)."""
    order = np.lexsort((-score, f_cls))
    first = np.ones(len(order), bool)
    first[1:] = f_cls[order[1:]] != f_cls[order[:-1]]
    return order[first]


def _d_max(
    q: np.ndarray, area: np.ndarray, f_idx: np.ndarray, theta: np.ndarray, known: np.ndarray | None,
    n: int, upper: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """max over candidate axes of m(D_n) per facet, and an upper bound of m(D_n) per candidate.

    Branch and bound: D_n(θ) contains C_n and D_d(θ') for every divisor d of n and every mirror
    axis θ' of D_n(θ), so m(D_n, θ) ≤ m(C_n) and ≤ the ``known`` per-candidate bounds of the
    subgroups (m(D1) for D2 and D3, m(D2) for D4, min(m(D2), m(D3)) for D6). The best-bounded class
    of axes is evaluated first, then only the classes whose bound exceeds the best value found.
    ``known`` None evaluates every class (used for D1). The returned per-candidate array holds the
    class value where evaluated and its bound elsewhere.
    """
    n_f = len(area)
    order, cls, starts = _axis_classes(f_idx, theta, n)
    f_cls, th_cls = f_idx[order][starts], theta[order][starts]
    best = np.full(n_f, -np.inf)
    if known is None:
        value = _group_measure(q, area, f_cls, n, th_cls)
    else:
        value = np.minimum(np.minimum.reduceat(known[order], starts), upper[f_cls])  # bounds
        first = _best_per_facet(f_cls, value)
        value[first] = _group_measure(q, area, f_cls[first], n, th_cls[first])
        best[f_cls[first]] = value[first]
        todo = np.flatnonzero(value > best[f_cls] + 1e-12)
        value[todo] = _group_measure(q, area, f_cls[todo], n, th_cls[todo])
    np.maximum.at(best, f_cls, value)  # bounds of skipped classes are ≤ best: no effect
    per_cand = np.empty(len(f_idx))
    per_cand[order] = value[cls]
    return best, per_cand


def symmetry_measures_batch(
    polygons: np.ndarray, counts: np.ndarray | None = None, axis_rule: str = "max"
) -> np.ndarray:
    """Symmetry measures [F, 10] (order ``GROUPS``) of F convex polygons in one vectorised pass.

    ``polygons`` [F, V, 2] (any length unit) hold ``counts[f]`` valid vertices first per row (all V
    if ``counts`` is None), in any order, orientation and starting vertex. See
    ``symmetry_measures`` for the definition and ``axis_rule``.
    """
    if axis_rule not in AXIS_RULES:
        raise ValueError(f"unknown axis_rule {axis_rule!r}; choose one of {AXIS_RULES}")
    p = np.asarray(polygons, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"polygons must have shape [F, V, 2], got {p.shape}")
    n_f, n_v = p.shape[:2]
    counts = np.full(n_f, n_v, np.int64) if counts is None else np.asarray(counts, np.int64)
    if counts.shape != (n_f,) or np.any(counts < 3) or np.any(counts > n_v):
        raise ValueError(f"each polygon needs 3..{n_v} valid vertices, got counts {counts}")
    out = np.ones((n_f, 10))
    if n_f == 0:
        return out
    q, area = _prepare(p, counts)
    facets = np.arange(n_f)
    for col, n in enumerate(_ORDERS, start=1):  # C_n need no alignment (§2 step 5)
        out[:, col] = _group_measure(q, area, facets, n, None)
    upper = dict(zip(_D_ORDERS, [np.ones(n_f), *(out[:, c] for c in range(1, 5))], strict=True))

    f_idx, theta, principal = _candidate_axes(q, counts)
    out[:, 5], d1 = _d_max(q, area, f_idx, theta, None, 1, upper[1])
    if axis_rule == "max":
        out[:, 6], u2 = _d_max(q, area, f_idx, theta, d1, 2, upper[2])
        out[:, 7], u3 = _d_max(q, area, f_idx, theta, d1, 3, upper[3])
        out[:, 8], _ = _d_max(q, area, f_idx, theta, u2, 4, upper[4])
        out[:, 9], _ = _d_max(q, area, f_idx, theta, np.minimum(u2, u3), 6, upper[6])
        return out
    # "first" (authors' code): principal axes keep the per-group maximum over both alignments;
    # degenerate polygons use the first candidate with D1 ≥ 0.9999, else the best D1 axis
    hit = d1 >= _FIRST_AXIS_D1
    score = np.where(hit, 2.0, d1) - 1e-9 * np.arange(len(d1))  # earliest hit / earliest best
    keep = principal[f_idx]
    keep[_best_per_facet(f_idx, score)] = True
    f_keep, th_keep = f_idx[keep], theta[keep]
    for col, n in enumerate(_D_ORDERS, start=5):
        val = d1[keep] if n == 1 else _group_measure(q, area, f_keep, n, th_keep)
        best = np.full(n_f, -np.inf)
        np.maximum.at(best, f_keep, val)
        out[:, col] = best
    return out


def symmetry_measures(polygon: np.ndarray, axis_rule: str = "max") -> np.ndarray:
    """The 10 symmetry measures (order C1, C2, C3, C4, C6, D1, D2, D3, D4, D6) of a convex polygon.

    ``polygon`` [n, 2] in its plane (any length unit; any vertex order, orientation or start).
    Centred on the area centroid, m(G) = area(P) / area(conv(∪_{g∈G} g·P)) (docs/position_free_crystals.md §2 steps 2–3;
    Paper B §II.A; Jørgensen 2019 thesis §3.2). D_n is aligned to candidate mirror axes: the two
    principal axes of the second moment of area if its eigenvalues differ by more than 10 %, else
    every axis through the centroid and an edge midpoint or a vertex (docs/position_free_crystals.md §2 step 4).
    ``axis_rule="max"`` takes each m(D_n) as the maximum over candidates; ``"first"`` follows the
    authors' code and uses, for degenerate polygons, the first candidate axis with m(D1) ≥ 0.9999
    (the best D1 axis if none reaches it) for all D groups. Values are dimensionless in (0, 1].
    """
    p = np.asarray(polygon, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
        raise ValueError(f"polygon must be an [n, 2] array with n ≥ 3 vertices, got {p.shape}")
    return symmetry_measures_batch(p[None], axis_rule=axis_rule)[0]


def symmetry_bits(measures: np.ndarray, threshold: float = 0.99) -> np.ndarray:
    """9-bit labels [C2, C3, C4, C6, D1, D2, D3, D4, D6] as float 0/1 from measures [..., 10].

    bit = 1 where m(G) ≥ ``threshold`` (0.99 per the authors' public code; docs/position_free_crystals.md §2 step 6).
    """
    m = np.asarray(measures, dtype=np.float64)
    if m.shape[-1] != 10:
        raise ValueError(f"measures must have 10 entries in the last axis (C1 … D6), got {m.shape}")
    return (m[..., 1:] >= threshold).astype(np.float64)
