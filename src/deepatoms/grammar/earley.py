"""Earley chart parser returning one leftmost derivation (Earley 1970; docs/grammars.md).

Earley (1970) recognition with the nullable-symbol fix of Aycock & Horspool (2002): an item
``A → α • B β`` with nullable ``B`` is advanced at once. For speed the items of chart set ``i``
are split in two parts:

- the *kernel*: items produced by scanning token ``i-1`` or by completion (origin < i); these are
  processed one by one;
- the *prediction block*: every item with origin ``i`` that prediction (and nullable advancing)
  adds. It depends only on the set S of nonterminals the kernel waits for, so it is computed once
  per distinct S and memoised (items indexed by next terminal and next nonterminal).

Scanning takes the kernel items and block items waiting for the token (index by next symbol);
completing ``A`` from origin ``j`` advances the kernel and block items of set ``j`` waiting for
``A``. Set ``i`` depends only on the first ``i`` tokens, so :meth:`EarleyParser.parse` can resume
from the chart of a previous string sharing a prefix (``parse_many`` sorts its inputs for this).

Derivation (leftmost, depth-first left to right) is read back from the chart top-down: the root is
the lowest-index start production spanning the input; the children of a node are resolved right to
left, each taking the *shortest* span that the chart allows (latest start), and among productions
with that span the *lowest index*. Every choice is checked against the chart (the item with the
dot before the child must be in the set where the child starts), so no backtracking is needed.
For an unambiguous grammar (the shipped SMILES and polymer grammars on their data) the result is
the unique derivation; the tie rule only matters for ambiguous grammars. Cyclic grammars (A ⇒+ A)
are rejected when the grammar is built.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Chart", "EarleyParser", "ParseFailure"]


@dataclass(frozen=True)
class _Block:
    items: frozenset[int]  # dotted-rule ids (origin = this set)
    waiting_term: dict[int, tuple[int, ...]]  # terminal -> dotted ids before it
    waiting_nt: dict[int, tuple[int, ...]]  # nonterminal -> dotted ids before it
    completed: dict[int, tuple[int, ...]]  # lhs -> rule ids completed with empty span


@dataclass
class ParseFailure:
    """Where parsing stopped: token index, expected terminal codes, whether the input could end."""

    index: int
    expected: list[int]
    end_ok: bool


class Chart:
    """Earley chart of one token sequence (reusable as prefix for the next parse)."""

    __slots__ = ("blocks", "kcomps", "ksets", "kwaits", "tokens", "twaits")

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.blocks: list[_Block] = []
        self.ksets: list[set[int]] = []
        self.kwaits: list[dict[int, list[int]]] = []
        self.twaits: list[dict[int, list[int]]] = []
        self.kcomps: list[dict[int, list[tuple[int, int]]]] = []

    def truncate(self, n_sets: int) -> None:
        for lst in (self.blocks, self.ksets, self.kwaits, self.twaits, self.kcomps):
            del lst[n_sets:]
        del self.tokens[max(n_sets - 1, 0) :]


class EarleyParser:
    """Earley parser over an integer grammar.

    Args:
        n_nonterminals: nonterminal codes are ``0..n_nonterminals-1``; terminal codes are larger.
        rules: ``(lhs, rhs)`` per production index (rhs as symbol codes).
        usable: per rule, whether it may be used (permanently masked rules are skipped).
        start: code of the start nonterminal.
    """

    def __init__(
        self,
        n_nonterminals: int,
        rules: list[tuple[int, tuple[int, ...]]],
        usable: list[bool],
        start: int,
    ) -> None:
        self.n_nt, self.rules, self.start = n_nonterminals, rules, start
        self.base: list[int] = []
        d_next: list[int] = []
        d_lhs: list[int] = []
        d_rule: list[int] = []
        for r, (lhs, rhs) in enumerate(rules):
            self.base.append(len(d_next))
            for dot in range(len(rhs) + 1):
                d_next.append(rhs[dot] if dot < len(rhs) else -1)
                d_lhs.append(lhs)
                d_rule.append(r)
        self.d_next, self.d_lhs, self.d_rule = d_next, d_lhs, d_rule
        self.ds = max(len(d_next), 1)
        self.has_nt = [any(x < n_nonterminals for x in rhs) for _, rhs in rules]
        self.rules_of: list[list[int]] = [[] for _ in range(n_nonterminals)]
        for r, (lhs, _) in enumerate(rules):
            if usable[r]:
                self.rules_of[lhs].append(r)
        self.nullable = [False] * n_nonterminals
        changed = True
        while changed:
            changed = False
            for r, (lhs, rhs) in enumerate(rules):
                if usable[r] and not self.nullable[lhs]:
                    if all(s < n_nonterminals and self.nullable[s] for s in rhs):
                        self.nullable[lhs] = changed = True
        self._blocks: dict[frozenset[int], _Block] = {}

    # ------------------------------------------------------------------ recognition
    def _block(self, wanted: frozenset[int]) -> _Block:
        """Prediction closure of the nonterminals ``wanted`` (memoised)."""
        blk = self._blocks.get(wanted)
        if blk is not None:
            return blk
        n_nt, d_next, nullable = self.n_nt, self.d_next, self.nullable
        predicted: set[int] = set()
        items: set[int] = set()
        stack = list(wanted)
        while stack:
            a = stack.pop()
            if a in predicted:
                continue
            predicted.add(a)
            for r in self.rules_of[a]:
                d = self.base[r]
                while d not in items:
                    items.add(d)
                    x = d_next[d]
                    if x < 0 or x >= n_nt:
                        break
                    if x not in predicted:
                        stack.append(x)
                    if not nullable[x]:
                        break
                    d += 1
        wt: dict[int, list[int]] = {}
        wn: dict[int, list[int]] = {}
        comp: dict[int, list[int]] = {}
        for d in sorted(items):
            x = d_next[d]
            if x < 0:
                comp.setdefault(self.d_lhs[d], []).append(self.d_rule[d])
            elif x < n_nt:
                wn.setdefault(x, []).append(d)
            else:
                wt.setdefault(x, []).append(d)
        blk = _Block(
            items=frozenset(items),
            waiting_term={k: tuple(v) for k, v in wt.items()},
            waiting_nt={k: tuple(v) for k, v in wn.items()},
            completed={k: tuple(v) for k, v in comp.items()},
        )
        self._blocks[wanted] = blk
        return blk

    def _add_set(self, chart: Chart, kernel: list[int], wanted: set[int]) -> None:
        """Close the kernel of the next chart set and append the set to ``chart``."""
        ds, d_next, d_lhs, d_rule = self.ds, self.d_next, self.d_lhs, self.d_rule
        n_nt, nullable = self.n_nt, self.nullable
        kwaits, blocks = chart.kwaits, chart.blocks
        kset = set(kernel)
        agenda = kernel
        kwait: dict[int, list[int]] = {}
        twait: dict[int, list[int]] = {}
        kcomp: dict[int, list[tuple[int, int]]] = {}
        j = 0
        while j < len(agenda):
            key = agenda[j]
            j += 1
            o, d = divmod(key, ds)
            x = d_next[d]
            if x < 0:
                a = d_lhs[d]
                lst = kcomp.get(a)
                if lst is None:
                    kcomp[a] = [(d_rule[d], o)]
                else:
                    lst.append((d_rule[d], o))
                parents = kwaits[o].get(a)
                if parents:
                    for p in parents:
                        q = p + 1
                        if q not in kset:
                            kset.add(q)
                            agenda.append(q)
                bp = blocks[o].waiting_nt.get(a)
                if bp:
                    b0 = o * ds + 1
                    for pd in bp:
                        q = b0 + pd
                        if q not in kset:
                            kset.add(q)
                            agenda.append(q)
            elif x < n_nt:
                lst2 = kwait.get(x)
                if lst2 is None:
                    kwait[x] = [key]
                else:
                    lst2.append(key)
                wanted.add(x)
                if nullable[x]:
                    q = key + 1
                    if q not in kset:
                        kset.add(q)
                        agenda.append(q)
            else:
                lst3 = twait.get(x)
                if lst3 is None:
                    twait[x] = [key]
                else:
                    lst3.append(key)
        blocks.append(self._block(frozenset(wanted)))
        chart.ksets.append(kset)
        chart.kwaits.append(kwait)
        chart.twaits.append(twait)
        chart.kcomps.append(kcomp)

    def _scan(self, chart: Chart, i: int, tok: int) -> list[int]:
        nxt = [k + 1 for k in chart.twaits[i].get(tok, ())]
        bt = chart.blocks[i].waiting_term.get(tok)
        if bt:
            b0 = i * self.ds + 1
            nxt.extend(b0 + d for d in bt)
        return nxt

    def _accepts(self, chart: Chart, i: int) -> bool:
        if any(o == 0 for _, o in chart.kcomps[i].get(self.start, ())):
            return True
        return i == 0 and self.start in chart.blocks[0].completed

    def _expected(self, chart: Chart, i: int) -> list[int]:
        return sorted(set(chart.twaits[i]) | set(chart.blocks[i].waiting_term))

    def parse(
        self, tokens: list[int], chart: Chart | None = None
    ) -> tuple[Chart, ParseFailure | None]:
        """Recognise ``tokens`` (terminal codes; -1 for a token that is no terminal).

        A previous ``chart`` is reused for the common prefix of its tokens and ``tokens``.
        Returns the chart (valid for the recognised prefix) and ``None`` on success or a
        :class:`ParseFailure`.
        """
        if chart is None or not chart.blocks:
            chart = Chart()
            self._add_set(chart, [], {self.start})
            i = 0
        else:
            old = chart.tokens
            lcp = 0
            m = min(len(old), len(tokens), len(chart.blocks) - 1)
            while lcp < m and old[lcp] == tokens[lcp]:
                lcp += 1
            chart.truncate(lcp + 1)
            i = lcp
        n = len(tokens)
        while i < n:
            tok = tokens[i]
            kernel = self._scan(chart, i, tok) if tok >= 0 else []
            if not kernel:
                return chart, ParseFailure(i, self._expected(chart, i), self._accepts(chart, i))
            chart.tokens.append(tok)
            self._add_set(chart, kernel, set())
            i += 1
        if not self._accepts(chart, n):
            return chart, ParseFailure(n, self._expected(chart, n), False)
        return chart, None

    # ------------------------------------------------------------------ derivation
    def _children(self, chart: Chart, r: int, j: int, i: int) -> list[tuple[int, int, int]]:
        """(rule, start, end) of the nonterminal children of rule ``r`` spanning tokens j..i."""
        rhs = self.rules[r][1]
        n_nt, ds = self.n_nt, self.ds
        base = self.base[r]
        blocks, ksets, kcomps = chart.blocks, chart.ksets, chart.kcomps
        e = i
        out: list[tuple[int, int, int]] = []
        for p in range(len(rhs), 0, -1):
            x = rhs[p - 1]
            if x >= n_nt:
                e -= 1
                continue
            prev_d = base + p - 1
            best_k, best_s = -1, -1
            # empty span first (shortest possible): completions with origin e in the block of e
            empties = blocks[e].completed.get(x)
            if empties and (prev_d in blocks[e].items if j == e else j * ds + prev_d in ksets[e]):
                best_k, best_s = e, min(empties)
            else:
                for s, k in kcomps[e].get(x, ()):
                    if k < j or k < best_k or (k == best_k and s > best_s):
                        continue
                    if prev_d in blocks[k].items if j == k else j * ds + prev_d in ksets[k]:
                        best_k, best_s = k, s
            if best_k < 0:  # pragma: no cover - impossible for a recognised input
                raise RuntimeError(f"Earley chart inconsistent at rule {r}, span {j}..{i}")
            out.append((best_s, best_k, e))
            e = best_k
        out.reverse()
        return out

    def derivation(self, chart: Chart, n: int) -> list[int]:
        """Leftmost derivation (production indices) of a recognised input of ``n`` tokens."""
        roots = [s for s, o in chart.kcomps[n].get(self.start, ()) if o == 0]
        if n == 0:
            roots.extend(chart.blocks[0].completed.get(self.start, ()))
        has_nt = self.has_nt
        out: list[int] = []
        stack = [(min(roots), 0, n)]
        while stack:
            r, j, i = stack.pop()
            out.append(r)
            if has_nt[r]:
                stack.extend(reversed(self._children(chart, r, j, i)))
        return out
