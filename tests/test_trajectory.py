"""Trajectories: events from states, exact sampler records, and the JSONL file round trip."""

from __future__ import annotations

import json

import pytest
import torch
from loflex import load_run
from loflex.contracts import Example
from loflex.contracts.vocab import BOS, EOS, MASK
from loflex.errors import DataError
from loflex.extension.assemble import assemble
from loflex.inspection.trajectory import (
    align_states,
    output_records,
    read_trajectories,
    sample_from_record,
    write_trajectories,
)
from loflex.sampling.sampler import sample

M = MASK
# prompt [5], BOS, EOS; step 0 inserts a mask; step 1 reveals it as 7 and inserts a mask
# left of it; step 2 reveals that one as 8.
STATES = [[5, BOS, EOS], [5, BOS, M, EOS], [5, BOS, M, 7, EOS], [5, BOS, 8, 7, EOS]]
TINY = ["domain.name=toy", "generator.options.layers=1", "generator.options.width=32",
        "generator.options.heads=2", "order.name=uniform", "sample.steps=12"]


def records(states, times=None):
    times = times or [k / len(states) for k in range(len(states))]
    return {"states": [{"t": t, "tokens": s} for t, s in zip(times, states)]}


def test_events_of_hand_built_states():
    insert, reveal = align_states(STATES)
    assert insert == [-1, -1, 1, 0, -1]
    assert reveal == [-1, -1, 2, 1, -1]


def test_new_masks_next_to_old_ones_are_taken_as_the_left_ones():
    insert, reveal = align_states([[BOS, EOS], [BOS, M, EOS], [BOS, M, M, EOS],
                                   [BOS, 9, 4, EOS]])
    assert insert == [-1, 1, 0, -1]
    assert reveal == [-1, 2, 2, -1]


@pytest.mark.parametrize("bad", [[[5, M, EOS], [5, EOS]],          # shrinks
                                 [[5, 6, EOS], [5, 7, EOS]],       # a revealed token changes
                                 [[5, EOS], [5, 6, EOS]]])          # a token appears unmasked
def test_inconsistent_states_are_rejected(bad):
    with pytest.raises(DataError):
        align_states(bad)


def test_states_rebuild_from_events():
    traj = sample_from_record(records(STATES), lambda ids: [str(i) for i in ids])
    assert traj.states() == STATES
    events = traj.events()
    assert [(e.insert_step, e.reveal_step) for e in events][2:4] == [(1, 2), (0, 1)]
    assert events[3].insert_time == traj.t[1] and events[3].reveal_time == traj.t[2]
    assert events[0].insert_time == 0.0 and events[0].reveal_time == 0.0
    assert traj.generated_slots() == [2, 3]


def _toy_model(toy_overrides=()):
    run = load_run(None, [*TINY, *toy_overrides])
    torch.manual_seed(0)
    return run, assemble(run)


def test_sampler_records_rebuild_the_recorded_states(toy):
    run, model = _toy_model()
    prompts = [Example(target=[], prompt=[5, 6, 7]), Example(target=[], prompt=[8, 9])]
    out = sample(model.generator, model.order, prompts, run.sample, record_trajectory=True,
                 rng=torch.Generator().manual_seed(1))
    recorded = out.trajectory.to_records()
    exact = output_records(out)
    for rec, ex in zip(recorded, exact):
        states = [[v for v in s["tokens"]] for s in rec["states"]]
        from_states = sample_from_record(rec, lambda ids: [str(i) for i in ids])
        from_output = sample_from_record(ex, lambda ids: [str(i) for i in ids])
        assert from_states.states() == states
        assert from_output.states() == states
        assert sorted(from_states.reveal_step) == sorted(from_output.reveal_step)


def test_file_round_trip(tmp_path, toy):
    _, model = _toy_model()
    times = [0.0, 0.25, 0.5, 0.75]
    path = write_trajectories(tmp_path / "t.jsonl", [records(STATES, times)] * 2, model.domain)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "loflex-trajectories" and header["t"] == times
    assert len(lines) == 3
    back = read_trajectories(tmp_path / "t.jsonl")
    assert len(back) == 2
    assert back[0].states() == STATES
    assert back[0].pieces[:2] == ["1", "<bos>"]  # id 5 is the digit "1" of the toy vocabulary
    assert back[0].text == "4 3"  # ids 8, 7 are the digits 4, 3
    assert back[0].events()[2].reveal_time == 0.75


def test_reading_a_wrong_file_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="loflex sample --trajectory"):
        read_trajectories(tmp_path / "missing.jsonl")
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(DataError, match="not a loflex trajectory"):
        read_trajectories(tmp_path / "x.jsonl")
