"""The test suite's time per group, from a pytest JUnit report: the table of docs/testing.md.

    python -m pytest -q --junitxml=junit.xml; python benchmarks/test_times.py junit.xml [--write docs/testing.md]

Groups are the make targets' marker expressions (tests/conftest.py, pyproject.toml): ``fast``
(``make test-fast``), ``llm`` (a language model or a real server, ``make test-llm``) and ``slow``
(builds from scratch); a test's group is read from pytest's own collection with each expression.
A test's time is the report's (setup, call and teardown), so the shared sample build counts in the
first test that asks for it. Prints the table; ``--write`` puts it in the file between its markers.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

GROUPS = {
    "fast": "not slow and not llm and not server and not tools",
    "llm": "(llm or server) and not tools",
    "slow": "slow and not llm and not server and not tools",
}
BEGIN, END = "<!-- test-times:begin -->", "<!-- test-times:end -->"


def collected(expression: str) -> set[str]:
    """The ids (``tests/test_x.py::test_y[param]``) pytest collects with ``-m expression``."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", expression, "-p", "no:cacheprovider"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {line.strip() for line in out.splitlines() if "::" in line}


def times(report: Path) -> dict[str, float]:
    """Each test's seconds by id, from a JUnit report."""
    out = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        out[f"{module}::{case.get('name')}"] = float(case.get("time", 0))
    return out


def table(report: Path) -> str:
    """The markdown table: per group and test file, how many tests and their seconds."""
    seconds = times(report)
    rows, totals = [], {}
    for group, expression in GROUPS.items():
        files: dict[str, list[float]] = collections.defaultdict(list)
        for test in collected(expression):
            if test in seconds:
                files[test.split("::")[0]].append(seconds[test])
        totals[group] = (sum(len(v) for v in files.values()), sum(sum(v) for v in files.values()))
        for file, values in sorted(files.items(), key=lambda kv: -sum(kv[1])):
            rows.append(f"| {group} | `{file}` | {len(values)} | {sum(values):.0f} |")
    summary = " ".join(f"`{g}`: {n} tests, {s / 60:.1f} min." for g, (n, s) in totals.items())
    return (
        f"Measured {datetime.date.today()} on {platform.machine()} with {Path(report).name} "
        f"(`python benchmarks/test_times.py {report}`). {summary}\n\n"
        "| group | file | tests | seconds |\n|---|---|---:|---:|\n" + "\n".join(rows) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--write", type=Path, help="A markdown file with the begin/end markers to fill.")
    args = parser.parse_args()
    text = table(args.report)
    print(text)
    if args.write:
        doc = args.write.read_text(encoding="utf-8")
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        args.write.write_text(doc[:start] + "\n" + text + doc[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
