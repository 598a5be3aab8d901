"""Training batches: shuffled, length-bucketed, resumable and shardable across processes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from loflex.contracts import Example
from loflex.diffusion.batch import Batch, collate
from loflex.errors import DataError, TrainingError


@dataclass
class Position:
    """Where the batch stream is: epoch and batch index within it (saved in checkpoints)."""

    epoch: int = 0
    index: int = 0


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  bucket: bool, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Return this rank's batches of example indices for one epoch.

    With ``bucket``, examples are shuffled, grouped in windows of 50 batches, sorted by
    length inside each window and cut into batches, and the batches are shuffled: rows
    of a batch have similar lengths, so little is spent on padding.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    if bucket:
        window = batch_size * 50
        order = [i for s in range(0, len(order), window)
                 for i in sorted(order[s:s + window], key=lambda j: lengths[j])]
    step = batch_size * world
    batches = [order[s:s + step] for s in range(0, len(order) - step + 1, step)]
    if not batches:  # fewer examples than one global batch: repeat them
        reps = order * (step // max(1, len(order)) + 1)
        batches = [reps[:step]]
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[p][rank * batch_size:(rank + 1) * batch_size] for p in perm]


class BatchStream:
    """An endless, resumable stream of training batches.

    Args:
        examples: the training examples.
        batch_size: rows per batch on this process.
        seed: the run seed (fixes every epoch's order).
        bucket: group similar lengths (see :func:`epoch_batches`).
        rank, world: this process and the number of processes (DDP sharding).
        num_workers: collate in this many DataLoader worker processes (0 = in-process).
    """

    def __init__(self, examples: Sequence[Example], batch_size: int, seed: int,
                 bucket: bool = True, rank: int = 0, world: int = 1, num_workers: int = 0):
        if len(examples) == 0:
            raise DataError("the training split is empty; give the domain some training data")
        self.examples = examples
        self.lengths = [len(ex.prompt) + len(ex.target) for ex in examples]
        self.batch_size, self.seed, self.bucket = batch_size, seed, bucket
        self.rank, self.world, self.num_workers = rank, world, num_workers
        self.position = Position()

    def __iter__(self) -> Iterator[Batch]:
        while True:
            batches = epoch_batches(self.lengths, self.batch_size, self.seed,
                                    self.position.epoch, self.bucket, self.rank, self.world)
            remaining = batches[self.position.index:]
            for batch in self._collated(remaining):
                self.position.index += 1
                yield batch
            self.position = Position(self.position.epoch + 1, 0)

    def _collated(self, index_batches: list[list[int]]) -> Iterator[Batch]:
        if self.num_workers == 0:
            for indices in index_batches:
                yield collate([self.examples[i] for i in indices])
            return
        loader = torch.utils.data.DataLoader(
            _Rows(self.examples), batch_sampler=index_batches, collate_fn=collate,
            num_workers=self.num_workers, persistent_workers=False,
        )
        try:
            yield from loader
        except RuntimeError as exc:
            if "DataLoader worker" in str(exc):
                raise TrainingError(
                    f"a data worker process died ({exc}); rerun with --set train.num_workers=0 "
                    "to see the underlying error, or resume with `loflex train --resume`"
                ) from None
            raise


class _Rows(torch.utils.data.Dataset):
    def __init__(self, examples: Sequence[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]
