"""Generation trajectories on disk: one JSON Lines file per run, events per slot.

A sampler only ever inserts masks and replaces masks by tokens, so a whole trajectory
is fixed by the final sequence plus, for every final slot, the step that inserted it
and the step that revealed it. That is what the file stores (O(L) numbers per sample
instead of O(L x steps)); :meth:`SampleTrajectory.state` rebuilds any intermediate state.

File layout (``trajectories.jsonl``)::

    {"format": "loflex-trajectories", "version": 1, "domain": "toy", "t": [0.0, ...]}
    {"tokens": [...], "pieces": [...], "insert_step": [...], "reveal_step": [...], "text": "..."}
    ...

``t[s]`` is the time of state s (state 0 is the start, state k + 1 follows sampler step
k). A slot inserted (revealed) at step k first exists (shows its token) in state k + 1,
so its event time is ``t[k + 1]``; step -1 means present from the start (prompt, BOS,
EOS) or never masked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loflex.contracts.vocab import EOS, MASK, PAD, SPECIAL_TOKENS
from loflex.errors import DataError
from loflex.training.checkpoint import atomic_write_text

FORMAT = "loflex-trajectories"
VERSION = 1


@dataclass
class TokenEvent:
    """When one final slot appeared (as a mask) and when it showed its token.

    Attributes:
        position: index of the slot in the final sequence.
        token: its final id.
        piece: its token text.
        insert_step: the sampler step that inserted it (-1: present from the start).
        insert_time: the time of the first state holding it (0 for initial slots).
        reveal_step: the step that revealed it (-1: never masked).
        reveal_time: the time of the first state showing its token (0 if never masked).
    """

    position: int
    token: int
    piece: str
    insert_step: int
    insert_time: float
    reveal_step: int
    reveal_time: float


@dataclass
class SampleTrajectory:
    """The trajectory of one sample.

    Attributes:
        tokens: final ids of every slot, prompt, BOS and EOS included.
        pieces: the token text of every slot.
        insert_step: per slot, the step that inserted it (-1 for initial slots).
        reveal_step: per slot, the step that revealed it (-1 if never masked).
        t: time of each state; ``len(t) - 1`` sampler steps.
        text: the generated target as text.
    """

    tokens: list[int]
    pieces: list[str]
    insert_step: list[int]
    reveal_step: list[int]
    t: list[float]
    text: str = ""

    @property
    def num_states(self) -> int:
        """How many states the trajectory has (steps + 1)."""
        return len(self.t)

    def state(self, s: int) -> list[int]:
        """Return the ids of state ``s`` (0 = start, -1 = final); masked slots are ``MASK``."""
        s = s % self.num_states
        out = []
        for token, ins, rev in zip(self.tokens, self.insert_step, self.reveal_step):
            if ins < s:  # inserted at step ins, present from state ins + 1 (ins = -1: always)
                out.append(token if rev < s else MASK)
        return out

    def states(self) -> list[list[int]]:
        """Return every state, from the start to the final sequence."""
        return [self.state(s) for s in range(self.num_states)]

    def events(self) -> list[TokenEvent]:
        """Return one :class:`TokenEvent` per final slot."""
        return [TokenEvent(i, tok, piece, ins, self._time(ins), rev, self._time(rev))
                for i, (tok, piece, ins, rev) in enumerate(zip(self.tokens, self.pieces,
                                                               self.insert_step, self.reveal_step))]

    def generated_slots(self) -> list[int]:
        """Return the positions of generated tokens (inserted during sampling, EOS excluded)."""
        return [i for i, (tok, ins) in enumerate(zip(self.tokens, self.insert_step))
                if ins >= 0 and tok != EOS]

    def _time(self, step: int) -> float:
        return 0.0 if step < 0 else self.t[step + 1]


# -- from sampler records ---------------------------------------------------------------


def align_states(states: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """Return the insert and reveal step of every final slot from a list of states.

    Each state must arise from the previous one by inserting ``MASK`` slots and
    replacing some earlier masks by tokens. Masks are interchangeable, so where the
    states alone do not say which of adjacent masks is the new one, the new masks are
    taken to be on the left (insertion into the gap left of a slot). The assignment
    is otherwise unique.

    Raises:
        DataError: two consecutive states that no such step connects.
    """
    first = list(states[0])
    insert = [-1] * len(first)
    reveal = [-1] * len(first)
    for k in range(1, len(states)):
        prev, nxt = list(states[k - 1]), list(states[k])
        source = _match(prev, nxt, k)  # index in prev for each slot of nxt, or -1 when new
        insert = [insert[i] if i >= 0 else k - 1 for i in source]
        reveal = [reveal[i] if i >= 0 else -1 for i in source]
        for j, i in enumerate(source):
            if i >= 0 and prev[i] == MASK and nxt[j] != MASK:
                reveal[j] = k - 1
    return insert, reveal


def _match(prev: list[int], nxt: list[int], k: int) -> list[int]:
    """Embed ``prev`` into ``nxt`` (extra slots must be masks; masks may become tokens)."""
    extra = len(nxt) - len(prev)
    if extra < 0:
        raise DataError(f"trajectory state {k} is shorter than state {k - 1}; states must only "
                        "grow (pass the records of loflex.sampling.sampler.Trajectory.to_records)")
    n = len(prev)
    if extra == 0 and all(map(_compatible, prev, nxt)):
        return list(range(n))
    # ok[d][i]: prev[i:] embeds into nxt[i + d:] with extra - d new slots still to place
    ok = [[False] * (n + 1) for _ in range(extra + 1)]
    ok[extra][n] = True
    for i in range(n, -1, -1):
        for d in range(extra, -1, -1):
            if i == n and d == extra:
                continue
            j = i + d
            new = d < extra and nxt[j] == MASK and ok[d + 1][i]
            keep = i < n and _compatible(prev[i], nxt[j]) and ok[d][i + 1]
            ok[d][i] = new or keep
    if not ok[0][0]:
        raise DataError(f"trajectory states {k - 1} and {k} are not connected by inserting masks "
                        "and revealing masks; the file is not a loflex sampler trajectory")
    source, i, d = [], 0, 0
    while i + d < len(nxt):
        if d < extra and nxt[i + d] == MASK and ok[d + 1][i]:
            source.append(-1)
            d += 1
        else:
            source.append(i)
            i += 1
    return source


def _compatible(before: int, after: int) -> bool:
    return before == after or (before == MASK and after >= len(SPECIAL_TOKENS))


def sample_from_record(record: dict, pieces_of, t: list[float] | None = None) -> SampleTrajectory:
    """Turn one sampler record into a :class:`SampleTrajectory`.

    Args:
        record: ``{"states": [{"t", "tokens"}, ...]}`` (``Trajectory.to_records``) or
            ``{"tokens", "insert_step", "reveal_step"}`` with the exact per-slot steps
            (:func:`output_records`), optionally with ``"t"``.
        pieces_of: ``f(ids) -> list[str]``, the text of each id.
        t: the state times when the record has none.
    """
    if "states" in record:
        states = [[v for v in s["tokens"] if v != PAD] for s in record["states"]]
        t = [float(s["t"]) for s in record["states"]]
        insert, reveal = align_states(states)
        tokens = states[-1]
    else:
        tokens = [int(v) for v in record["tokens"]]
        insert, reveal = list(record["insert_step"]), list(record["reveal_step"])
        t = list(record.get("t", t or []))
    assert len(insert) == len(tokens) == len(reveal), "one insert and reveal step per slot"
    return SampleTrajectory(tokens=tokens, pieces=pieces_of(tokens), insert_step=insert,
                            reveal_step=reveal, t=t)


def output_records(output) -> list[dict]:
    """Return exact per-slot records of a :class:`loflex.sampling.sampler.SampleOutput`.

    Uses the sampler's own ``insert_step``/``reveal_step`` (no alignment needed); the
    state times come from the recorded trajectory.
    """
    assert output.trajectory is not None, "sample with record_trajectory=True to get the times"
    records = []
    rows = zip(output.x.tolist(), output.insert_step.tolist(), output.reveal_step.tolist())
    for ids, ins, rev in rows:
        keep = [j for j, v in enumerate(ids) if v != PAD]
        records.append({"tokens": [ids[j] for j in keep], "insert_step": [ins[j] for j in keep],
                        "reveal_step": [rev[j] for j in keep], "t": list(output.trajectory.t)})
    return records


# -- files ------------------------------------------------------------------------------


def write_trajectories(path: str | Path, records: Sequence[dict], domain) -> Path:
    """Write sampler trajectory records to one JSON Lines file, atomically.

    Args:
        path: the file to write (the caller decides whether overwriting is allowed).
        records: one record per sample, as :func:`sample_from_record` accepts.
        domain: the model's :class:`loflex.Domain` (token text and target text).

    Returns:
        ``path``.
    """
    path = Path(path)
    samples = [sample_from_record(r, lambda ids: _pieces(domain, ids)) for r in records]
    t = samples[0].t if samples else []
    header = {"format": FORMAT, "version": VERSION, "domain": getattr(domain, "name", ""), "t": t}
    lines = [json.dumps(header)]
    for s in samples:
        assert s.t == t, "every sample of one file must share the state times"
        text = domain.to_text([s.tokens[i] for i in s.generated_slots()])
        lines.append(json.dumps({"tokens": s.tokens, "pieces": s.pieces,
                                 "insert_step": s.insert_step, "reveal_step": s.reveal_step,
                                 "text": text}))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _pieces(domain, ids: Sequence[int]) -> list[str]:
    return domain.vocab.decode(ids, skip_special=False)


def read_trajectories(path: str | Path) -> list[SampleTrajectory]:
    """Read a file written by :func:`write_trajectories`.

    Raises:
        DataError: the file is missing or is not a loflex trajectory file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "trajectories.jsonl"
    if not path.exists():
        raise DataError(f"trajectory file '{path}' does not exist; write one with "
                        "`loflex sample --trajectory DIR`")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        header = json.loads(lines[0])
        assert header.get("format") == FORMAT
        t = [float(v) for v in header["t"]]
        return [_sample(json.loads(line), t) for line in lines[1:]]
    except (IndexError, KeyError, TypeError, ValueError, AssertionError):
        raise DataError(f"'{path}' is not a loflex trajectory file; write one with "
                        "`loflex sample --trajectory DIR`") from None


def _sample(record: dict, t: list[float]) -> SampleTrajectory:
    return SampleTrajectory(tokens=[int(v) for v in record["tokens"]],
                            pieces=[str(p) for p in record["pieces"]],
                            insert_step=[int(v) for v in record["insert_step"]],
                            reveal_step=[int(v) for v in record["reveal_step"]],
                            t=t, text=str(record.get("text", "")))
