"""docs/memory.md's table of every hosted size is the estimator's output, not a copy that can drift."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_tables_are_the_scripts_output():
    script = runpy.run_path(str(ROOT / "scripts" / "memory_table.py"))
    rows = script["rows"]()
    doc = (ROOT / "docs" / "memory.md").read_text()
    profiles = doc.split("<!-- profile-table:start -->\n", 1)[1].split("\n<!-- profile-table:end -->", 1)[0]
    assert profiles.splitlines() == script["profile_rows"]()
    documented = doc.split("<!-- memory-table:start -->\n", 1)[1].split("\n<!-- memory-table:end -->", 1)[0]
    assert documented.splitlines() == rows
    decoders = doc.split("<!-- decoder-table:start -->\n", 1)[1].split("\n<!-- decoder-table:end -->", 1)[0]
    assert decoders.splitlines() == script["decoder_rows"]()
    # LTX-2.5 Fast at 1080p and 4K, Pro at 1080p, 3 durations x 2 frame rates each, and the header and separator
    assert len(decoders.splitlines()) == 2 + 3 * 3 * 2
    # 3 + 3 + 6 + 6 sizes x 3 durations x 2, 2, 4 and 4 frame rates, plus the header and separator; LTX-2 (any
    # size, duration and fps): 5 sizes x 3 durations x 2 frame rates; LTX-2.5 Fast and Pro: 8 and 4 sizes x 12
    # durations x 4 and 3 frame rates.
    assert len(rows) == 2 + 3 * 3 * 2 + 3 * 3 * 2 + 6 * 3 * 4 + 6 * 3 * 4 + 5 * 3 * 2 + 8 * 12 * 4 + 4 * 12 * 3
