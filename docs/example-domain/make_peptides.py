"""Write the bundled peptide file: synthetic, seeded, no download.

Residues follow UniProt background frequencies; lengths are 8 to 30; many start with
methionine; a few carry an unknown residue 'X', as real FASTA files do.

    python make_peptides.py > loflex_example_protein/data/peptides.fasta
"""

import random

FREQUENCIES = {
    "A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75,
    "G": 7.07, "H": 2.27, "I": 5.96, "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86,
    "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08, "Y": 2.92, "V": 6.87,
}
MOTIFS = ["RGD", "KKR", "GGSG", "LLKK", "NGT", "DEVD", "PPG", "HHHH"]


def peptide(rng: random.Random) -> str:
    """Return one synthetic peptide."""
    length = rng.randint(8, 30)
    residues = rng.choices(list(FREQUENCIES), weights=list(FREQUENCIES.values()), k=length)
    if rng.random() < 0.4:
        residues[0] = "M"
    if rng.random() < 0.3:
        motif = rng.choice(MOTIFS)
        start = rng.randrange(0, length - len(motif) + 1)
        residues[start:start + len(motif)] = motif
    if rng.random() < 0.03:
        residues[rng.randrange(length)] = "X"
    return "".join(residues[:length])


def main(count: int = 300, seed: int = 0) -> None:
    """Print ``count`` peptides as FASTA, 60 residues per line."""
    rng = random.Random(seed)
    for i in range(count):
        sequence = peptide(rng)
        print(f">pep{i + 1:04d} synthetic peptide")
        for start in range(0, len(sequence), 60):
            print(sequence[start:start + 60])


if __name__ == "__main__":
    main()
