"""The token vocabulary shared by every domain: four special tokens, then data tokens."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from loflex.errors import DataError

PAD, MASK, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<mask>", "<bos>", "<eos>")


class Vocabulary:
    """Map tokens to ids: ``<pad>`` 0, ``<mask>`` 1, ``<bos>`` 2, ``<eos>`` 3, then ``tokens``.

    Built from the training data and stored with every checkpoint, never hard-coded.
    """

    pad_id, mask_id, bos_id, eos_id = PAD, MASK, BOS, EOS

    def __init__(self, tokens: Sequence[str]):
        tokens = [tok for tok in tokens if tok not in SPECIAL_TOKENS]
        assert len(set(tokens)) == len(tokens), "vocabulary tokens must be unique"
        self.itos: list[str] = list(SPECIAL_TOKENS) + list(tokens)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]]) -> Vocabulary:
        """Build a vocabulary of every token seen, sorted for determinism."""
        seen: set[str] = set()
        for tokens in token_lists:
            seen.update(tokens)
        return cls(sorted(seen))

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Return the ids of ``tokens``.

        Raises:
            DataError: a token is not in the vocabulary (names the first few).
        """
        unknown = [tok for tok in tokens if tok not in self.stoi]
        if unknown:
            shown = ", ".join(repr(tok) for tok in list(dict.fromkeys(unknown))[:5])
            raise DataError(
                f"tokens not in the model's vocabulary: {shown}; use only tokens seen in "
                "training (the vocabulary is stored with the checkpoint)"
            )
        return [self.stoi[tok] for tok in tokens]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> list[str]:
        """Return the tokens of ``ids``, without pad/mask/bos/eos unless asked."""
        out = []
        for i in ids:
            i = int(i)
            if skip_special and i < len(SPECIAL_TOKENS):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else "<unk>")
        return out

    def to_json(self) -> dict:
        """Return a JSON-able form (stored in checkpoints)."""
        return {"tokens": self.itos[len(SPECIAL_TOKENS):]}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        """Rebuild a vocabulary from :meth:`to_json` output."""
        return cls(data["tokens"])
