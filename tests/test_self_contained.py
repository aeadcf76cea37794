"""A clone passes its own tests: nothing the code or the tests read lives beside the repository.

The vendors' answers used to come from `../shared/fixtures/providers` beside the clone (only
CI laid it there); they are now tests/fixtures/providers, described by tests/fixtures/PROVIDERS.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from helpers import FIXTURES, HTTP_VENDORS, PROVIDER_FIXTURES, PROVIDERS_MD, TESTS

REPO = TESTS.parent
# What ships or runs: the package, its migrations, the tests, the benchmarks, CI, the
# deployment files, and the files at the top of the repository.
FOLDERS = ("src", "migrations", "tests", "bench", ".ci", "airflow", "systemd")
# A path out of the repository to a `shared` folder: "../shared", "shared/fixtures",
# Path(...) / "shared" / "fixtures", os.path.join(..., "shared", "fixtures").
OUTSIDE = re.compile(r"""\.\./+shared\b|\bshared/fixtures\b|["']shared["']\s*[/,]\s*["']fixtures["']""")


def repository_files() -> list[Path]:
    files = [p for p in REPO.iterdir() if p.is_file()]
    for folder in FOLDERS:
        files += [p for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return [p for p in files if not p.is_relative_to(FIXTURES) and p.resolve() != Path(__file__).resolve()]


def test_no_file_reads_anything_beside_the_repository():
    found = []
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # not text
        found += [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
                  for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert found == [], "read from the repository instead (tests/fixtures):\n" + "\n".join(found)


def test_the_pattern_catches_what_it_is_for():
    for line in ('Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "providers"',
                 "see ../shared/fixtures/providers", "os.path.join(root, 'shared', 'fixtures')",
                 "..//shared/PROVIDERS.md"):
        assert OUTSIDE.search(line), line
    for line in ('data = tmp_path / "shared"', "held shared by shards", "pg_try_advisory_lock_shared"):
        assert not OUTSIDE.search(line), line


def test_the_vendor_answers_are_in_the_repository():
    assert PROVIDER_FIXTURES.resolve().is_relative_to(REPO.resolve())
    assert PROVIDERS_MD.is_file()
    vendors = {p.name for p in PROVIDER_FIXTURES.iterdir() if p.is_dir()}
    assert vendors == set(HTTP_VENDORS)
    for vendor in vendors:  # PROVIDERS.md has a section for every folder
        assert re.search(rf"^##\s+{vendor}/", PROVIDERS_MD.read_text(encoding="utf-8"), re.MULTILINE), vendor


def test_the_csv_answers_keep_their_crlf_line_endings():
    # PROVIDERS.md: both CSV fixtures use CRLF on purpose (tests/fixtures/.gitattributes keeps them).
    for path in PROVIDER_FIXTURES.rglob("*.csv"):
        data = path.read_bytes()
        assert data.count(b"\r\n") == data.count(b"\n") > 0, path
