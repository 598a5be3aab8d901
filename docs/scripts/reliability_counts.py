"""Run the reliability suite and print how many cases each file tried, and their outcomes.

    python docs/scripts/reliability_counts.py            # all of it, slow tests included
    python docs/scripts/reliability_counts.py -m "not slow"

Each test case is one bad input, one injected fault or one property (a property runs up to
its ``max_examples`` generated inputs); the table is the one in docs/reliability.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ["test_reliability_config.py", "test_reliability_data.py",
         "test_reliability_checkpoints.py", "test_reliability_plugins.py", "test_faults.py",
         "test_security.py", "test_fuzz.py", "test_load.py"]


def outcome(case: ET.Element) -> str:
    for child in case:
        if child.tag == "skipped":
            return "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        if child.tag in ("failure", "error"):
            return "failed"
    return "passed"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--junitxml={report}", *sys.argv[1:], *(f"tests/{f}" for f in FILES)]
        env = {**os.environ, "LOFLEX_LOAD_PLUGINS": ""}
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
        cases = ET.parse(report).getroot().iter("testcase")
        counts: dict[str, Counter] = {f: Counter() for f in FILES}
        for case in cases:
            name = case.get("classname", "").split(".")[-1] + ".py"
            if name in counts:
                counts[name][outcome(case)] += 1
    print("| file | cases | passed | xfailed | skipped | failed |")
    print("|---|---:|---:|---:|---:|---:|")
    total: Counter = Counter()
    for name, c in counts.items():
        total.update(c)
        print(f"| {name} | {sum(c.values())} | {c['passed']} | {c['xfailed']} | {c['skipped']} "
              f"| {c['failed']} |")
    print(f"| **all** | {sum(total.values())} | {total['passed']} | {total['xfailed']} | "
          f"{total['skipped']} | {total['failed']} |")


if __name__ == "__main__":
    main()
