"""Pure logic of the reviewer's file diffs (engine/diffs.py): parsing git's
output, the caps, and pairing patches with files."""

from __future__ import annotations

from engine import diffs

PATCH = """diff --git a/app.py b/app.py
index 1111111..2222222 100644
--- a/app.py
+++ b/app.py
@@ -1,2 +1,2 @@
 keep
-old
+new
diff --git "a/we\\"ird.txt" "b/we\\"ird.txt"
new file mode 100644
--- /dev/null
+++ "b/we\\"ird.txt"
@@ -0,0 +1 @@
+hello
"""


def test_numstat_marks_binary_files_and_counts_text_lines():
    files = diffs.parse_numstat("1\t1\tapp.py\0-\t-\tlogo.png\0" + "3\t0\tdir/a b.txt\0")
    assert [(f.path, f.added, f.deleted, f.binary) for f in files] == [
        ("app.py", 1, 1, False), ("logo.png", None, None, True), ("dir/a b.txt", 3, 0, False)]
    assert files[1].why_not_shown == "binary"


def test_a_patch_splits_into_hunks_per_file_without_headers():
    bodies = diffs.split_patch(PATCH)
    assert bodies == ["@@ -1,2 +1,2 @@\n keep\n-old\n+new\n", "@@ -0,0 +1 @@\n+hello\n"]


def test_files_over_the_line_cap_are_named_not_shown(monkeypatch):
    monkeypatch.setattr(diffs, "MAX_FILE_LINES", 10)
    files = diffs.parse_numstat("1\t1\tapp.py\0" + "9\t2\tbig.txt\0" + '1\t0\twe"ird.txt\0')
    shown = diffs.to_show(files)
    assert [f.path for f in shown] == ["app.py", 'we"ird.txt']
    result = diffs.attach(files, shown, diffs.split_patch(PATCH))
    assert result[0].patch.endswith("+new\n") and result[2].patch == "@@ -0,0 +1 @@\n+hello\n"
    assert result[1].patch == "" and result[1].why_not_shown == "too large"
    assert [kind for kind, _ in result[0].lines] == ["hunk", "ctx", "del", "add"]


def test_the_byte_budget_stops_showing_patches_and_a_mismatch_shows_none(monkeypatch):
    files = diffs.parse_numstat("1\t1\tapp.py\0" + '1\t0\twe"ird.txt\0')
    bodies = diffs.split_patch(PATCH)
    monkeypatch.setattr(diffs, "MAX_PATCH_BYTES", len(bodies[0]))
    result = diffs.attach(files, files, bodies)
    assert result[0].patch and not result[1].patch and result[1].why_not_shown == "too large"
    assert not any(d.patch for d in diffs.attach(files, files, bodies[:1]))  # git named another count of files


def test_the_file_count_cap_names_the_rest(monkeypatch):
    monkeypatch.setattr(diffs, "MAX_FILES_SHOWN", 1)
    files = diffs.parse_numstat("1\t1\tapp.py\0" + '1\t0\twe"ird.txt\0')
    assert [f.path for f in diffs.to_show(files)] == ["app.py"]
