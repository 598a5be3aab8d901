"""The ``star-graph`` domain: path finding on star graphs (docs/method.md §6.1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from loflex import config
from loflex.contracts import SPLITS, Domain, Example, Generated
from loflex.contracts.options import expand_home
from loflex.contracts.vocab import SPECIAL_TOKENS, Vocabulary
from loflex.errors import CheckpointError, DataError
from pydantic import Field

from loflex_graphs import dataset
from loflex_graphs.graphs import PRESETS, Preset, split_prompt, split_seed
from loflex_graphs.metrics import star_metrics, to_nodes

DEFAULT_CACHE = Path("~/.cache/loflex/star-graph")


class StarGraphDomain(Domain):
    """Star-graph traversal: given a shuffled edge list, write the source-to-goal path.

    Serialisation (node ids are the tokens "0" .. "N-1"):

    - prompt: the shuffled edges ``u1 v1 u2 v2 ...`` (each in path direction), then
      ``source goal``; the core adds BOS after it;
    - target: the path as consecutive edges ``p0 p1 p1 p2 ... p_{k-1} p_k``; the core adds EOS;
    - order hint (``Example.order_hint``): per target token, the distance in edges of its
      edge from the junction (the centre node): 0 for an edge touching the centre, growing
      toward both path ends; the two tokens of an edge share the value. Orders such as
      ``star-oracle`` read it as ``Batch.order_hint``.

    Splits are drawn from disjoint seed-derived random streams, so a split does not
    depend on the sizes of the others, and are cached on disk as ``.npz`` files.
    """

    name = "star-graph"
    provides_order_hint = True
    headline_metric = "exact_match"

    class Options(config.Options):
        difficulty: Literal["easy", "medium", "hard"] = Field(
            "easy", description="Preset: easy (3 arms of 5 nodes from the source), medium "
            "(3 paths of 3-6 nodes, 20 ids) or hard (5 paths of 6-12 nodes, 56 ids).",
        )
        seed: int = Field(42, description="Seed of the generator (each split derives its own).")
        train_size: int = Field(50000, ge=1, description="Training graphs.")
        valid_size: int = Field(100, ge=1, description="Validation graphs.")
        test_size: int = Field(5000, ge=1, description="Test graphs.")
        cache: bool = Field(True, description="Cache generated splits on disk as .npz files.")

    def __init__(self, options: StarGraphDomain.Options, *, state: dict | None = None,
                 cache_dir: Path | None = None):
        super().__init__(options, state=state, cache_dir=cache_dir)
        self.preset: Preset = PRESETS[options.difficulty]
        nodes = [str(n) for n in range(self.preset.num_nodes)]
        if state is None:
            self.vocab = Vocabulary(nodes)
        else:
            self.vocab = Vocabulary.from_json(state["vocab"])
            missing = [tok for tok in nodes if tok not in self.vocab]
            if missing:
                raise CheckpointError(
                    f"the checkpoint's vocabulary lacks node ids {', '.join(missing[:5])} of "
                    f"star-graph difficulty '{options.difficulty}'; use the difficulty the "
                    "model was trained on"
                )
        self._node_ids = np.array(self.vocab.encode(nodes), dtype=np.int64)
        self._splits: dict[str, dataset.StarExamples] = {}

    # -- lengths -------------------------------------------------------------
    @property
    def max_prompt_length(self) -> int:
        """Two tokens per edge of the largest graph, then source and goal."""
        return self.preset.max_prompt_length

    @property
    def max_target_length(self) -> int:
        """Two tokens per edge of the longest path."""
        return self.preset.max_target_length

    # -- data ----------------------------------------------------------------
    def examples(self, split: str) -> Sequence[Example]:
        """Return the examples of ``split``, generating (and caching) them on first use."""
        if split not in SPLITS:
            raise DataError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
        if split not in self._splits:
            self._splits[split] = dataset.StarExamples(self._arrays(split), self._node_ids)
        return self._splits[split]

    def _arrays(self, split: str) -> dataset.SplitArrays:
        opts = self.options
        size = getattr(opts, f"{split}_size")
        seed = split_seed(opts.seed, opts.difficulty, split)
        if not opts.cache:
            return dataset.generate_split(self.preset, seed, size)
        directory = self.cache_dir if self.cache_dir is not None else expand_home(DEFAULT_CACHE)
        path = dataset.cache_path(Path(directory), opts.difficulty, opts.seed, split, size)
        arrays = dataset.load_split(path, size)
        if arrays is None:
            arrays = dataset.generate_split(self.preset, seed, size)
            dataset.save_split(arrays, path)
        return arrays

    # -- text ----------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Split on whitespace: every token is a node id."""
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join node ids with single spaces."""
        return " ".join(tokens)

    def parse_prompt(self, text: str) -> Example:
        """Turn ``"u v u v ... source goal"`` into a prompt-only example.

        Raises:
            DataError: a token is not a node id of this difficulty, or the count is odd.
        """
        ids = self.encode(text)
        if len(ids) < 4 or len(ids) % 2:
            raise DataError(
                f"a star-graph prompt is 'u v u v ... source goal' (an even number >= 4 of "
                f"node ids), got {len(ids)} tokens; write each edge as two ids, then source goal"
            )
        return Example(target=[], prompt=ids)

    # -- evaluation ----------------------------------------------------------
    def metrics(self, samples: Sequence[Generated]) -> dict[str, float]:
        """Return exact_match, token_accuracy(_padded), valid_path and order_correlation.

        See :func:`loflex_graphs.metrics.star_metrics` for the definitions.
        """
        return star_metrics(samples, self.vocab)

    def draw(self, tokens: Sequence[int], values: Sequence[float], path: Path, *,
             prompt: Sequence[int] = (), title: str = "") -> bool:
        """Draw the graph of ``prompt`` with the path edges coloured by ``values``.

        Each edge gets the later value of its two tokens; times in [0, 1] use the fixed
        range [0, 1], other values (sampler steps) their own range. Without a prompt
        there is no graph, and the core's token strip is used.
        """
        from loflex_graphs.drawing import draw_path_values

        if not [i for i in prompt if i >= len(SPECIAL_TOKENS)]:
            return False
        sample = Generated(tokens=list(tokens), prompt=list(prompt))
        times = all(0.0 <= v <= 1.0 for v in values)
        draw_path_values(sample, values, path, vocab=self.vocab, title=title,
                         label="time" if times else "sampler step")
        return True

    def describe(self, example: Example) -> dict[str, Any]:
        """Return the readable example plus its source, goal and edge count."""
        info = super().describe(example)
        nodes = to_nodes(example.prompt, self.vocab)
        if None not in nodes and len(nodes) >= 2 and len(nodes) % 2 == 0:
            edges, source, goal = split_prompt(nodes)
            info.update(source=source, goal=goal, edges=len(edges))
        if example.order_hint is not None:
            info["order_hint"] = list(example.order_hint)
        return info
