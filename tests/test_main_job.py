"""The main job (docs/scripts/main-job.sh) refuses to write into a folder that holds files."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "scripts" / "main-job.sh"


def test_a_non_empty_output_folder_is_refused_and_left_as_it_was(tmp_path):
    kept = tmp_path / "results.json"
    kept.write_text("{}")
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path), "false"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not empty" in lines[0] and "RUN_DIR" in lines[0]
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert kept.read_text() == "{}"
