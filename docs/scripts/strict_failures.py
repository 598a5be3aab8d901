"""Why SAFE samples fail the strict decode: count the failure kinds of a samples file.

    python docs/scripts/strict_failures.py SAMPLES.jsonl [--examples 5]

SAMPLES.jsonl is what ``loflex sample`` writes for a molecule model (one ``{"text": ...}``
per line, SAFE or BracketSAFE). A sample is strictly valid when the whole string decodes into one
connected molecule. Otherwise it is counted under the first reason that applies:

- an attachment point is left without its bond (fragment and fragment-tree tokens only:
  the text keeps a ``<*>`` or ``<^>`` mark);
- a fragment fails on its own, by RDKit's complaint about it (each fragment's unpaired
  attachment numbers are capped with a dummy atom first): ``aromatic ring`` (it cannot be
  kekulised, e.g. a ring of five or seven aromatic carbons), ``valence``, ``syntax``
  (it does not parse: an unclosed ring or branch) or ``other``;
- every fragment decodes but joining them fails (an attachment number without its pair);
- the joined molecule is disconnected.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

import safe as sf
from loflex_molecules.fragment_tokens import PLACEHOLDER
from loflex_molecules.fragment_tree import PARENT
from loflex_molecules.representations import bracket_to_safe
from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")
SMILES_TOKEN = re.compile(r"(\[[^\]]*\]|%\d\d|\d|Cl|Br|.)")


def capped(fragment: str) -> str:
    """``fragment`` with each ring number that occurs an odd number of times replaced by a
    dummy-atom branch, so that its attachment points do not read as unclosed rings."""
    tokens = SMILES_TOKEN.findall(fragment)
    numbers = Counter(t for t in tokens if t[0] == "%" or t.isdigit())
    return "".join("(*)" if numbers.get(t, 0) % 2 else t for t in tokens)


def fragment_failure(fragment: str) -> str | None:
    """The reason a SAFE fragment does not decode on its own, or None when it does."""
    if sf.decode(fragment, ignore_errors=True) is not None:
        return None
    mol = Chem.MolFromSmiles(capped(fragment), sanitize=False)
    if mol is None:
        return "syntax"
    try:
        Chem.SanitizeMol(mol)
    except (Chem.KekulizeException, Chem.AtomKekulizeException):
        return "aromatic ring"
    except Chem.AtomValenceException:
        return "valence"
    except Exception:  # noqa: BLE001 - any other RDKit complaint
        return "other"
    return "other"


def failure(text: str) -> str | None:
    """The first reason ``text`` (SAFE or BracketSAFE) is not strictly valid, or None."""
    if PLACEHOLDER in text or PARENT in text:
        return "attachment point left without its bond"
    text = bracket_to_safe(text) if "<" in text else text
    for fragment in text.split("."):
        reason = fragment_failure(fragment)
        if reason is not None:
            return f"fragment: {reason}"
    joined = sf.decode(text, canonical=True, fix=False, ignore_errors=True)
    if not joined:
        return "join fails"
    return "disconnected" if "." in joined else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("samples")
    p.add_argument("--examples", type=int, default=5, help="failing samples to show per kind")
    args = p.parse_args()
    with open(args.samples, encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle if line.strip()]
    kinds: dict[str, list[str]] = {}
    for text in texts:
        kinds.setdefault(failure(text) or "strictly valid", []).append(text)
    print(f"{len(texts)} samples")
    for kind, members in sorted(kinds.items(), key=lambda item: -len(item[1])):
        print(f"{kind:<24} {len(members):>5} {100 * len(members) / len(texts):6.1f}%")
        if kind != "strictly valid":
            for text in members[:args.examples]:
                print(f"    {text}")


if __name__ == "__main__":
    main()
