"""Supabase Storage's key rules (supabase/storage ``src/storage/limits.ts``) and the BLOB key function (pure).

The examples are the ones of upstream's own ``src/storage/limits.test.ts``; the charset is also checked, as
upstream does, against its earlier capturing-alternation regex for every UTF-16 code unit.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_cutover.migrate.blobs import object_path
from pytest_cutover.util.storage_key import (
    MAX_SEGMENT,
    dot_segment,
    is_valid_bucket_name,
    is_valid_key,
    safe_segment,
)

# limits.test.ts: "accepts %s" / "rejects %s"
ACCEPTED = [
    ("a typical object path", "folder/file-name_01.jpg"),
    ("every accepted punctuation character", "file/!-*'() &$=@;:+,?name"),
    ("underscore from the word-character set", "file_name"),
    ("a single slash", "/"),
    ("a 1024-character key", "a" * 1023 + "/"),
]
REFUSED = [
    ("an empty string", ""),
    ("a tab", "file\tname"),
    ("a newline", "file\nname"),
    ("DEL", "file\x7f"),
    ("a percent-encoded fragment", "file%20name"),
    ("S3 characters to avoid", 'file#[]{}^~`"<>\\|'),
    ("a raw unicode name", "ファイル-emoji-😀.txt"),
    ("a trailing newline ($ in Python would let it through)", "file\n"),
]
_LEGACY_KEY = re.compile(r"^(\w|\/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*\Z", re.ASCII)


@pytest.mark.parametrize(("why", "key"), ACCEPTED)
def test_keys_supabase_accepts(why, key):
    assert is_valid_key(key), why


@pytest.mark.parametrize(("why", "key"), REFUSED)
def test_keys_supabase_refuses(why, key):
    assert not is_valid_key(key), why


def test_charset_matches_upstreams_legacy_oracle_for_every_utf16_code_unit_and_an_astral_one():
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF] + ["\U0001F600"]
    mismatches = [f"U+{ord(c):04X}" for c in chars
                  if is_valid_key(f"a{c}b") != bool(_LEGACY_KEY.match(f"a{c}b"))]
    assert mismatches == []
    assert sum(is_valid_key(f"a{c}b") for c in chars) == 63 + 18  # \w (ASCII), then / . space and 15 more


def test_bucket_names_are_1_to_100_key_characters_without_a_slash():
    assert is_valid_bucket_name("a" * 100) and not is_valid_bucket_name("a" * 101)
    assert not is_valid_bucket_name("folder/name") and is_valid_key("folder/name")
    assert not is_valid_bucket_name("") and not is_valid_bucket_name("é")


def test_dot_segments_are_what_the_file_backend_calls_traversal():
    assert dot_segment("a/../b") and dot_segment("./a") and dot_segment("a/.")
    assert not dot_segment("a/..b/.c") and not dot_segment("a//b")


HOSTILE = ["résumé final.pdf", "a b#c?.txt", "100%.csv", "..", ".", "   ", "", "😀🎉.png", "x" * 400 + ".bin",
           "日本語.docx", "../../etc/passwd", "tab\there.txt", "a/b\\c.txt", "\x00nul", "name.", " lead.txt",
           "é" * 300, "Ω.tar.gz"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_filenames_become_accepted_segments(name):
    segment = safe_segment(name)
    assert is_valid_key(segment) and "/" not in segment and not dot_segment(segment)
    assert 0 < len(segment) <= MAX_SEGMENT and segment.strip() == segment
    assert safe_segment(name) == segment  # deterministic


def test_plain_names_keep_their_key_and_the_extension_survives_a_rewrite():
    assert [safe_segment(n) for n in ("report.pdf", "q?&=+,;:@$.txt", ".hidden", "a.tar.gz", 42)] == \
        ["report.pdf", "q?&=+,;:@$.txt", ".hidden", "a.tar.gz", "42"]
    assert safe_segment("résumé final.pdf").startswith("resume_final-") and safe_segment("résumé.pdf").endswith(".pdf")
    assert safe_segment("😀.png").endswith(".png")
    assert len({safe_segment(n) for n in HOSTILE}) == len(HOSTILE)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_becomes_one_accepted_segment(text):
    segment = safe_segment(text)
    assert is_valid_key(segment) and "/" not in segment and not dot_segment(segment)
    assert len(segment) <= MAX_SEGMENT and segment == safe_segment(text)
    if is_valid_key(text) and "/" not in text and len(text) <= MAX_SEGMENT and text.strip() == text \
            and text.strip("."):
        assert segment == text


@settings(max_examples=400, deadline=None)
@given(st.text(), st.text())
def test_distinct_filenames_get_distinct_segments(a, b):
    if a != b:
        assert safe_segment(a) != safe_segment(b)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["org_0001", "org_0002", "6f1c7a52-3d1e-4c35-9e59-3b8f6d1e2a10"]), st.text(),
       st.integers(min_value=1))
def test_object_paths_keep_the_org_folder_first_and_are_accepted(org, filename, attachment):
    row = {"org_id": org, "thread_id": "00000000-0000-0000-0000-000000000001", "id": attachment,
           "filename": filename}
    path = object_path("{org_id}/{thread_id}/{attachment_id}/{filename}", row)
    assert is_valid_key(path) and not dot_segment(path)
    assert path.split("/")[0] == org and len(path.split("/")) == 4  # (storage.foldername(name))[1] is the org
