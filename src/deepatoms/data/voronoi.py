"""Voronoi quotient graphs of periodic structures (docs/position_free_crystals.md §1).

One vertex per atom of the unit cell; every facet of atom i's Voronoi cell is shared with an atom j
at integer cell shift n (j = i allowed for n ≠ 0) and gives the directed edge i ← (j, n); the same
facet seen from j gives j ← (i, −n) (Paper B §II; Jørgensen 2019 thesis §2.2.1). Edge conventions
follow ``neighbors.py``: ``edge_index`` rows are (receiver i, sender j), the edge vector is
r_ij = r_j − r_i + n·cell (cell rows are lattice vectors), and the list is *mirrored*: edge e + E/2
is edge e with receiver and sender swapped and the shift negated.

Tessellation (docs/position_free_crystals.md §1, Default): scipy's Qhull Voronoi over the atoms plus their periodic images
within a radius R of some atom, grown until every central cell is bounded and certified complete:
when all vertices of atom i's cell lie within R/2 of atom i, no point farther than R can cut the
cell (a point q cuts it only if |q − r_i| < 2·max|v − r_i|), so its facet set can no longer change.
R is doubled while a cell is unbounded and otherwise set to 2·max|v − r_i| (cells only shrink as
images are added, so the next round is certified).
Vertices closer than 1e-6 × the nearest-neighbour distance are merged; facets below 1e-8 Å² are
dropped before the solid-angle filter Ω ≥ ``omega_cut`` (0.2 sr, Paper B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import QhullError, Voronoi, cKDTree

from deepatoms.data.facet_symmetry import facet_polygons_2d, symmetry_bits, symmetry_measures_batch

_MERGE_REL = 1e-6  # vertex merge distance relative to the nearest-neighbour distance (§1)
_MIN_AREA = 1e-8  # Å²; facets below are discarded before the Ω filter (§1)
_MAX_DOUBLINGS = 8


@dataclass(frozen=True)
class VoronoiEdges:
    """Mirrored directed Voronoi edges of one periodic structure (docs/position_free_crystals.md §1).

    ``edge_index`` [2, E] int64 (receiver, sender; local atom indices), ``edge_shift`` [E, 3] int64
    (r_ij = r_j − r_i + shift·cell), ``distance`` [E] Å, ``area`` [E] Å² (facet area),
    ``solid_angle`` [E] sr (facet seen from the receiver), ``symmetry`` [E, 9] 0/1 bits
    [C2, C3, C4, C6, D1, D2, D3, D4, D6] and ``measures`` [E, 10] (C1 … D6; both zero when not
    computed). Edge e + E/2 is edge e reversed; both directions share all facet quantities.
    """

    edge_index: np.ndarray
    edge_shift: np.ndarray
    distance: np.ndarray
    area: np.ndarray
    solid_angle: np.ndarray
    symmetry: np.ndarray
    measures: np.ndarray
    n_atoms: int

    @property
    def num_edges(self) -> int:
        """Number of directed edges E (twice the number of facets)."""
        return int(self.edge_index.shape[1])

    def n_facets_per_atom(self) -> np.ndarray:
        """Facets of each atom's Voronoi cell after filtering, [n_atoms] int64."""
        return np.bincount(self.edge_index[0], minlength=self.n_atoms).astype(np.int64)


def _check_inputs(positions: np.ndarray, cell: np.ndarray, omega_cut: float) -> tuple:
    """Validated float arrays (positions Å, cell rows Å) and the cell volume (Å³)."""
    pos = np.asarray(positions, dtype=np.float64)
    lat = np.asarray(cell, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0:
        raise ValueError(f"positions must be a non-empty [n, 3] array in Å, got shape {pos.shape}")
    if lat.shape != (3, 3):
        raise ValueError(
            f"cell must be a [3, 3] array whose rows are lattice vectors, got {lat.shape}"
        )
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(lat))):
        raise ValueError("positions and cell must be finite")
    volume = abs(np.linalg.det(lat))
    if volume <= 1e-9 * np.linalg.norm(lat, axis=1).prod():
        raise ValueError(
            f"the cell {lat.tolist()} has (near) zero volume; Voronoi graphs need a 3-D periodic cell"
        )
    if not omega_cut >= 0:
        raise ValueError(f"omega_cut must be ≥ 0 sr, got {omega_cut}")
    return pos, lat, volume


def _images(pos: np.ndarray, lat: np.ndarray, volume: float, radius: float) -> tuple:
    """Atoms plus all periodic images within ``radius`` Å of some atom; the n atoms come first.

    Returns points [P, 3], their atom index [P] and cell shift [P, 3], and the nearest-neighbour
    distance (Å) among them.
    """
    n = len(pos)
    frac = pos @ np.linalg.inv(lat)
    heights = volume / np.linalg.norm(np.cross(lat[[1, 2, 0]], lat[[2, 0, 1]]), axis=1)
    spread = frac.max(axis=0) - frac.min(axis=0)
    reach = np.ceil(radius / heights + spread).astype(np.int64)
    axes = [np.arange(-r, r + 1) for r in reach]
    shifts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    shifts = shifts[np.argsort(np.abs(shifts).sum(axis=1), kind="stable")]  # shift 0 first
    pts = (pos[None, :, :] + (shifts @ lat)[:, None, :]).reshape(-1, 3)
    atom = np.tile(np.arange(n), len(shifts))
    shift = np.repeat(shifts, n, axis=0)
    d, _ = cKDTree(pos).query(pts)
    keep = d <= radius
    keep[:n] = True
    pts, atom, shift = pts[keep], atom[keep], shift[keep]
    # nearest-neighbour distance: smallest non-zero distance from an atom to any other point
    dn, _ = cKDTree(pts).query(pos, k=2)
    nn = float(dn[:, 1].min())
    if nn < 1e-8:
        i = int(np.argmin(dn[:, 1]))
        raise ValueError(
            f"atom {i} coincides with another atom or periodic image (distance {nn:.2e} Å); "
            "remove duplicate sites before building a Voronoi graph"
        )
    return pts, atom, shift, nn


def _is_flat(pts: np.ndarray) -> bool:
    """True when the points span less than 3 dimensions (relative tolerance 1e-9)."""
    sv = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
    return bool(len(pts) < 4 or sv[-1] <= 1e-9 * sv[0])


def _tessellate(pos: np.ndarray, lat: np.ndarray, volume: float) -> tuple:
    """Qhull Voronoi over atoms + images, growing the radius until every central cell is certified.

    Returns the scipy Voronoi object, its input points with their atom indices and shifts, and the
    nearest-neighbour distance (Å).
    """
    n = len(pos)
    radius = 2.0 * (volume / n) ** (1 / 3)
    for _ in range(_MAX_DOUBLINGS):
        pts, atom, shift, nn = _images(pos, lat, volume, radius)
        try:
            vor = Voronoi(pts)
        except QhullError as err:
            if _is_flat(pts):  # layered cell: the images within the radius lie in one plane
                radius *= 2.0
                continue
            raise ValueError(  # Qhull rarely fails on distinct, full-dimensional points
                f"Qhull could not tessellate the structure ({err}); check for nearly coincident "
                "atoms or a degenerate cell"
            ) from err
        r_max = 0.0  # largest distance from a central atom to a vertex of its cell
        for i in range(n):
            region = vor.regions[vor.point_region[i]]
            if len(region) == 0 or -1 in region:
                r_max = np.inf
                break
            r_max = max(r_max, float(np.linalg.norm(vor.vertices[region] - pos[i], axis=1).max()))
        if 2.0 * r_max <= radius * (1 + 1e-9):
            return vor, pts, atom, shift, nn
        # unbounded: double; bounded: cells only shrink as points are added, so 2·r_max certifies
        radius = 2.0 * radius if np.isinf(r_max) else max(2.0 * r_max * (1 + 1e-6), 1.25 * radius)
    raise ValueError(
        f"Voronoi cells did not close within an image radius of {radius / 2:.1f} Å; the cell is "
        "probably extremely skewed: reduce it first (e.g. pymatgen Structure.get_reduced_structure)"
    )


def _central_facets(vor: Voronoi, n: int, nn: float) -> tuple:
    """Facets (Qhull ridges) touching the n central atoms, vertices merged.

    Returns, per facet, the receiver (a central atom) and sender point indices, a padded table of
    merged vertex ids [F, V] (distinct ids first), the number of distinct vertices [F], and the
    coordinates (Å) of each merged vertex id.
    """
    rp = vor.ridge_points
    sel = np.flatnonzero((rp[:, 0] < n) | (rp[:, 1] < n))
    recv = np.where(rp[sel, 0] < n, rp[sel, 0], rp[sel, 1])
    send = np.where(rp[sel, 0] < n, rp[sel, 1], rp[sel, 0])
    ridges = [vor.ridge_vertices[k] for k in sel]
    lengths = np.fromiter((len(r) for r in ridges), np.int64, len(ridges))
    flat = np.fromiter((v for r in ridges for v in r), np.int64, int(lengths.sum()))
    if np.any(flat < 0):  # cannot happen for certified bounded cells
        raise RuntimeError("an unbounded ridge touches a central Voronoi cell")
    # merge vertices closer than 1e-6 × the nearest-neighbour distance (§1)
    used, inverse = np.unique(flat, return_inverse=True)
    pairs = cKDTree(vor.vertices[used]).query_pairs(_MERGE_REL * nn, output_type="ndarray")
    graph = coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])),
        shape=(len(used), len(used)),
    )
    _, label = connected_components(graph, directed=False)
    merged = label[inverse]
    # one representative vertex per merged label
    rep = np.zeros(label.max() + 1, np.int64)
    rep[label] = used
    coords = vor.vertices[rep]
    # padded [F, V] label table with duplicates removed inside each facet
    n_f, n_v = len(sel), int(lengths.max()) if len(sel) else 0
    table = np.full((n_f, n_v), np.iinfo(np.int64).max)
    rows = np.repeat(np.arange(n_f), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    table[rows, cols] = merged
    table.sort(axis=1)
    fresh = table < np.iinfo(np.int64).max
    fresh[:, 1:] &= table[:, 1:] != table[:, :-1]
    counts = fresh.sum(axis=1)
    table = np.take_along_axis(table, np.argsort(~fresh, axis=1, kind="stable"), axis=1)
    return recv, send, table, counts, coords


def _solid_angles(tri_a: np.ndarray, tri_b: np.ndarray, tri_c: np.ndarray) -> np.ndarray:
    """Solid angles (sr) of triangles seen from the origin, Van Oosterom–Strackee (1983).

    tan(Ω/2) = |a·(b×c)| / (|a||b||c| + (a·b)|c| + (a·c)|b| + (b·c)|a|); vectors [..., 3] in Å.
    """
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (tri_a, tri_b, tri_c))
    num = np.abs(np.einsum("...k,...k->...", tri_a, np.cross(tri_b, tri_c)))
    den = (
        la * lb * lc
        + np.einsum("...k,...k->...", tri_a, tri_b) * lc
        + np.einsum("...k,...k->...", tri_a, tri_c) * lb
        + np.einsum("...k,...k->...", tri_b, tri_c) * la
    )
    return 2.0 * np.arctan2(num, den)


def voronoi_edges(
    positions: np.ndarray,
    cell: np.ndarray,
    *,
    omega_cut: float = 0.2,
    symmetry: bool = True,
    axis_rule: str = "max",
    threshold: float = 0.99,
) -> VoronoiEdges:
    """Mirrored Voronoi quotient-graph edges of one periodic structure (docs/position_free_crystals.md §1–2).

    ``positions`` [n, 3] Cartesian Å (not wrapped: shifts refer to the given positions), ``cell``
    [3, 3] rows = lattice vectors (Å). Facets with solid angle Ω < ``omega_cut`` (sr, seen from
    either atom; Paper B uses 0.2) are dropped. Ω is summed over a fan triangulation from the
    facet's first vertex (Van Oosterom–Strackee). With ``symmetry`` the facet point-group measures
    and 9-bit labels (``facet_symmetry``; ``axis_rule`` and ``threshold`` as there) are attached;
    otherwise those arrays are zeros.
    """
    pos, lat, volume = _check_inputs(positions, cell, omega_cut)
    n = len(pos)
    vor, pts, atom, shift, nn = _tessellate(pos, lat, volume)
    recv, send, table, counts, coords = _central_facets(vor, n, nn)

    # canonical key per facet: (i, j, n) with i < j, or i == j and n > 0 lexicographically
    i, j, s = recv, atom[send], shift[send]
    s_pos = (s[:, 0] > 0) | ((s[:, 0] == 0) & ((s[:, 1] > 0) | ((s[:, 1] == 0) & (s[:, 2] > 0))))
    canon = (i < j) | ((i == j) & s_pos)
    keys = np.column_stack(
        [np.where(canon, i, j), np.where(canon, j, i), np.where(canon[:, None], s, -s)]
    )
    keys, pick = np.unique(keys, axis=0, return_index=True)
    recv, send, table, counts = recv[pick], send[pick], table[pick], counts[pick]
    ok = counts >= 3
    keys, recv, send, table, counts = keys[ok], recv[ok], send[ok], table[ok], counts[ok]

    # geometry of each facet seen from its receiver (the same from the other side)
    bond = pts[send] - pts[recv]
    distance = np.linalg.norm(bond, axis=1)
    n_v = int(counts.max()) if len(counts) else 3
    verts = coords[np.minimum(table[:, :n_v], len(coords) - 1)]
    poly, order = facet_polygons_2d(verts, counts, bond)
    verts = np.take_along_axis(verts, order[..., None], axis=1)
    x, y = poly[..., 0], poly[..., 1]
    area = 0.5 * np.abs((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))
    rel = verts - pts[recv][:, None, :]
    omega = _solid_angles(rel[:, :1], rel[:, 1:-1], rel[:, 2:]).sum(axis=1)
    ok = (area >= _MIN_AREA) & (omega >= omega_cut)
    keys, distance, area, omega = keys[ok], distance[ok], area[ok], omega[ok]
    poly, counts = poly[ok], counts[ok]

    measures = np.zeros((len(keys), 10))
    bits = np.zeros((len(keys), 9))
    if symmetry and len(keys):
        measures = symmetry_measures_batch(poly, counts, axis_rule=axis_rule)
        bits = symmetry_bits(measures, threshold)
    edge_index = np.concatenate([keys[:, :2].T, keys[:, 1::-1].T], axis=1).astype(np.int64)
    edge_shift = np.concatenate([keys[:, 2:], -keys[:, 2:]]).astype(np.int64)

    def twice(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, a])

    return VoronoiEdges(
        edge_index=edge_index,
        edge_shift=edge_shift,
        distance=twice(distance),
        area=twice(area),
        solid_angle=twice(omega),
        symmetry=twice(bits),
        measures=twice(measures),
        n_atoms=n,
    )
