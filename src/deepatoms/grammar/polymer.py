"""Donor–acceptor polymer strings of Paper D (Fig. 2 and Table I of Jørgensen
et al., J. Chem. Phys. 148, 241735 (2018)).

Surface syntax (Paper D Fig. 2): ``<acceptor>-<X groups>-<Y groups>+<donor>-<X groups>-<Y groups>``,
group lists space-separated, ``*`` when empty; e.g. ``A1-H OCH3-S+D4-H F-O S S``.

Building blocks (Table I): acceptors A1–A13, donors D1–D10; acceptor X: OCH3, CH3, SCH3, F, H;
acceptor Y: S, Se, NCH3, O; donor X: SCH3, F, H, O, OCH3, S, CH3, Se; donor Y: S, O, C, Si, Ge, Se,
NCH3.

Fixed-length features (§9): one-hot acceptor (13) and donor (10), the side-group counts per slot and
group (5 + 4 + 8 + 7 = 24), and all products of the 23 one-hot entries with the 24 counts (552):
13 + 10 + 24 + 552 = 599 columns.

Generated data (§8, Default): acceptor and donor uniform; per-list group counts uniform in
0..max_groups; groups uniform over the slot's Table I set (with replacement); seeded.

Synthetic labels (**SYNTHETIC, not DFT**): a fixed random function of the building blocks drawn from
``seed``: ε_HOMO = −5.3 + w_H·f + P_H[a, d] and Δε = 2.2 + w_G·f + P_G[a, d] (clipped at 0.5 eV),
ε_LUMO = ε_HOMO + Δε, ε_opt = 0.8·Δε − 0.3 + ½ w_O·f, with f the 599 features above (additive
one-hot and count terms plus block×group products), P acceptor×donor pair terms and w Gaussian
weights (sd 0.25 one-hot, 0.06 counts, 0.02 products, 0.1 pairs). They exercise regressors and ICM
only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepatoms.grammar.cfg import Grammar, load_grammar
from deepatoms.grammar.errors import GrammarError

__all__ = [
    "ACCEPTORS",
    "ACCEPTOR_X",
    "ACCEPTOR_Y",
    "ALL_GROUPS",
    "DONORS",
    "DONOR_X",
    "DONOR_Y",
    "POLYMER_PROPERTIES",
    "SLOTS",
    "Monomer",
    "generate_polymer_strings",
    "parse_monomer",
    "polymer_features",
    "polymer_validity",
    "read_polymer_csv",
    "synthetic_polymer_labels",
]

ACCEPTORS: tuple[str, ...] = tuple(f"A{k}" for k in range(1, 14))
DONORS: tuple[str, ...] = tuple(f"D{k}" for k in range(1, 11))
ACCEPTOR_X: tuple[str, ...] = ("OCH3", "CH3", "SCH3", "F", "H")
ACCEPTOR_Y: tuple[str, ...] = ("S", "Se", "NCH3", "O")
DONOR_X: tuple[str, ...] = ("SCH3", "F", "H", "O", "OCH3", "S", "CH3", "Se")
DONOR_Y: tuple[str, ...] = ("S", "O", "C", "Si", "Ge", "Se", "NCH3")
#: the group set of the ``paper41`` grammar (any group in any list)
ALL_GROUPS: tuple[str, ...] = (
    "OCH3", "CH3", "SCH3", "F", "H", "O", "S", "Se", "NCH3", "C", "Si", "Ge",
)  # fmt: skip
#: slot name -> Table I group set, in feature order
SLOTS: dict[str, tuple[str, ...]] = {
    "acceptor_x": ACCEPTOR_X,
    "acceptor_y": ACCEPTOR_Y,
    "donor_x": DONOR_X,
    "donor_y": DONOR_Y,
}
POLYMER_PROPERTIES: tuple[str, ...] = ("homo", "lumo", "gap", "opt")
_SLOT_LABEL = {"acceptor_x": "accX", "acceptor_y": "accY", "donor_x": "donX", "donor_y": "donY"}


@dataclass(frozen=True)
class Monomer:
    """A donor–acceptor monomer: building blocks and their X / Y side-group lists."""

    acceptor: str
    acceptor_x: tuple[str, ...]
    acceptor_y: tuple[str, ...]
    donor: str
    donor_x: tuple[str, ...]
    donor_y: tuple[str, ...]

    def to_string(self) -> str:
        """The canonical surface string (``*`` for empty lists)."""

        def lst(groups: tuple[str, ...]) -> str:
            return " ".join(groups) if groups else "*"

        return (
            f"{self.acceptor}-{lst(self.acceptor_x)}-{lst(self.acceptor_y)}+"
            f"{self.donor}-{lst(self.donor_x)}-{lst(self.donor_y)}"
        )

    def slot(self, name: str) -> tuple[str, ...]:
        """Groups of slot ``acceptor_x``, ``acceptor_y``, ``donor_x`` or ``donor_y``."""
        return getattr(self, name)


def _half(text: str, what: str, s: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    parts = text.split("-")
    if len(parts) != 3:
        raise GrammarError(
            f"polymer string {s!r}: the {what} part {text!r} must be '<block>-<X groups>-<Y "
            f"groups>' (two '-'), found {len(parts) - 1}"
        )
    block = parts[0].strip()
    if not block or " " in block:
        raise GrammarError(f"polymer string {s!r}: bad {what} block name {parts[0]!r}")
    lists = []
    for k, raw in enumerate(parts[1:]):
        groups = raw.split()
        if groups == ["*"]:
            groups = []
        elif not groups or "*" in groups:
            raise GrammarError(
                f"polymer string {s!r}: {what} {'XY'[k]} list {raw!r} must be space-separated "
                "groups or '*' when empty"
            )
        lists.append(tuple(groups))
    return block, lists[0], lists[1]


def parse_monomer(s: str, strict: bool = False) -> Monomer:
    """Split a polymer string into a :class:`Monomer`.

    Checks the syntax and the names (acceptor A1–A13, donor D1–D10, groups of the ``paper41`` set);
    with ``strict`` every group must belong to its slot's Table I set.

    Raises:
        GrammarError: naming the string and what is wrong.
    """
    if not isinstance(s, str):
        raise GrammarError(f"polymer string must be a str, got {type(s).__name__}: {s!r}")
    halves = s.split("+")
    if len(halves) != 2:
        raise GrammarError(
            f"polymer string {s!r} must contain exactly one '+' between the acceptor and the "
            f"donor part, found {len(halves) - 1}"
        )
    a, ax, ay = _half(halves[0], "acceptor", s)
    d, dx, dy = _half(halves[1], "donor", s)
    m = Monomer(a, ax, ay, d, dx, dy)
    if a not in ACCEPTORS:
        raise GrammarError(f"polymer string {s!r}: unknown acceptor {a!r} (expected A1..A13)")
    if d not in DONORS:
        raise GrammarError(f"polymer string {s!r}: unknown donor {d!r} (expected D1..D10)")
    for name, allowed in SLOTS.items():
        pool = allowed if strict else ALL_GROUPS
        bad = [g for g in m.slot(name) if g not in pool]
        if bad:
            raise GrammarError(
                f"polymer string {s!r}: group(s) {bad} not allowed in the {name.replace('_', ' ')} "
                f"list; allowed: {', '.join(pool)}"
            )
    return m


def generate_polymer_strings(n: int, seed: int = 0, max_groups: int = 3) -> list[str]:
    """``n`` random monomer strings (the distribution of docs/grammar_vae.md §8, seeded)."""
    if n < 0 or max_groups < 0:
        raise ValueError(f"n and max_groups must be >= 0, got n={n}, max_groups={max_groups}")
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(n):
        a = ACCEPTORS[rng.integers(len(ACCEPTORS))]
        d = DONORS[rng.integers(len(DONORS))]
        lists = []
        for pool in SLOTS.values():
            k = int(rng.integers(max_groups + 1))
            lists.append(tuple(pool[i] for i in rng.integers(len(pool), size=k)))
        out.append(Monomer(a, lists[0], lists[1], d, lists[2], lists[3]).to_string())
    return out


def _feature_names() -> list[str]:
    onehot = [f"acc={a}" for a in ACCEPTORS] + [f"don={d}" for d in DONORS]
    counts = [f"{_SLOT_LABEL[s]}:{g}" for s, pool in SLOTS.items() for g in pool]
    return onehot + counts + [f"{o}*{c}" for o in onehot for c in counts]


def polymer_features(strings: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Fixed-length features [N, 599] (Paper D's fixed-length features) and their column names.

    Columns: ``acc=A1..A13``, ``don=D1..D10``, counts ``accX:<g>``, ``accY:<g>``, ``donX:<g>``,
    ``donY:<g>`` (Table I order), then products ``<onehot>*<count>`` (one-hot major).

    Raises:
        GrammarError: naming the index of a string that is not a Table I monomer.
    """
    names = _feature_names()
    n = len(strings)
    onehot = np.zeros((n, 23))
    counts = np.zeros((n, 24))
    col = {}
    off = 0
    for s, pool in SLOTS.items():
        for k, g in enumerate(pool):
            col[(s, g)] = off + k
        off += len(pool)
    for i, text in enumerate(strings):
        try:
            m = parse_monomer(text, strict=True)
        except GrammarError as err:
            raise GrammarError(f"string {i}: {err}") from None
        onehot[i, ACCEPTORS.index(m.acceptor)] = 1.0
        onehot[i, 13 + DONORS.index(m.donor)] = 1.0
        for s in SLOTS:
            for g in m.slot(s):
                counts[i, col[(s, g)]] += 1.0
    products = (onehot[:, :, None] * counts[:, None, :]).reshape(n, 23 * 24)
    return np.concatenate([onehot, counts, products], axis=1), names


def synthetic_polymer_labels(strings: Sequence[str], seed: int = 0) -> dict[str, np.ndarray]:
    """SYNTHETIC ε_HOMO, ε_LUMO, Δε, ε_opt (eV) of Table I monomers (module docstring).

    The function is fixed by ``seed``; it is not a physical model and exercises code paths only.
    """
    feats, _ = polymer_features(strings)
    rng = np.random.default_rng(seed)
    scale = np.concatenate([np.full(23, 0.25), np.full(24, 0.06), np.full(552, 0.02)])
    w = rng.normal(size=(599, 3)) * scale[:, None]
    pair = rng.normal(0.0, 0.1, size=(13, 10, 2))
    a = feats[:, :13].argmax(axis=1)
    d = feats[:, 13:23].argmax(axis=1)
    lin = feats @ w
    homo = -5.3 + lin[:, 0] + pair[a, d, 0]
    gap = np.maximum(2.2 + lin[:, 1] + pair[a, d, 1], 0.5)
    opt = 0.8 * gap - 0.3 + 0.5 * lin[:, 2]
    return {"homo": homo, "lumo": homo + gap, "gap": gap, "opt": opt}


def read_polymer_csv(path: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read a polymer CSV with a ``string`` column and property columns (eV).

    Returns the strings and a dict with whichever of ``homo``, ``lumo``, ``gap``, ``opt`` are
    present (float arrays; an empty cell is NaN). Other columns are ignored.

    Raises:
        GrammarError: naming the file, row and column of a malformed string or value.
    """
    p = Path(path)
    try:
        fh = open(p, newline="", encoding="utf-8")
    except OSError as err:
        raise GrammarError(f"cannot read polymer CSV '{p}': {err}") from None
    with fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if "string" not in header:
            raise GrammarError(
                f"polymer CSV '{p}' has no 'string' column (columns: {header}); expected columns "
                "string, homo, lumo, gap, opt"
            )
        props = [c for c in POLYMER_PROPERTIES if c in header]
        strings: list[str] = []
        values: dict[str, list[float]] = {c: [] for c in props}
        for row in reader:
            where = f"polymer CSV '{p}', line {reader.line_num}"
            s = (row.get("string") or "").strip()
            try:
                parse_monomer(s)
            except GrammarError as err:
                raise GrammarError(f"{where}: {err}") from None
            strings.append(s)
            for c in props:
                cell = (row.get(c) or "").strip()
                try:
                    v = float(cell) if cell else math.nan
                except ValueError:
                    raise GrammarError(
                        f"{where}: column {c!r} value {cell!r} is not a number (eV)"
                    ) from None
                values[c].append(v)
    return strings, {c: np.asarray(v, dtype=float) for c, v in values.items()}


def polymer_validity(
    site_table: Mapping[str, tuple[int, int]] | None = None,
    max_groups: int = 6,
    grammar: Grammar | None = None,
) -> Callable[[str], bool]:
    """A validity check for polymer strings (docs/grammars.md, site limits).

    A string is valid when it parses with ``grammar`` (default: ``paper41``), every group list has
    at most ``max_groups`` groups, and — for blocks listed in ``site_table`` (block name →
    (number of X sites, number of Y sites)) — its X and Y lists fill exactly those sites.
    """
    g = grammar if grammar is not None else load_grammar("polymer")
    table: dict[str, tuple[int, int]] = {}
    for block, sites in (site_table or {}).items():
        try:
            nx, ny = (int(v) for v in sites)
        except (TypeError, ValueError):
            raise GrammarError(
                f"site table entry {block!r}: expected (n_X_sites, n_Y_sites), got {sites!r}"
            ) from None
        if nx < 0 or ny < 0:
            raise GrammarError(f"site table entry {block!r}: negative site count {sites!r}")
        table[str(block)] = (nx, ny)

    def is_valid(s: str) -> bool:
        if not isinstance(s, str):
            return False
        try:
            g.parse(s)
            halves = s.split("+")
            parts = [_half(h, "half", s) for h in halves]
        except (GrammarError, ValueError):
            return False
        for block, xs, ys in parts:
            if len(xs) > max_groups or len(ys) > max_groups:
                return False
            if block in table and (len(xs), len(ys)) != table[block]:
                return False
        return True

    return is_valid
