"""The guard that keeps the suite independent of the machine: it must flag a read outside the allowed folders."""

from __future__ import annotations

import os
import tempfile

from read_audit import REPO, ReadAudit, allowed_roots, is_outside


def test_allowed_roots_cover_the_repo_and_tmp(tmp_path):
    roots = allowed_roots()
    assert not is_outside(REPO / "README.md", roots)
    assert not is_outside(tmp_path / "x.txt", roots)


def test_home_and_sibling_folders_are_outside():
    roots = allowed_roots()
    assert is_outside("/nonexistent-home/user/.cache/freqdense/synthetic/x.npz", roots)
    # Prefix matching is by whole folders: a sibling whose name starts with the repo's is not the repo.
    assert is_outside("/data/checkout-sibling/file", ("/data/checkout",))
    assert not is_outside("/data/checkout/file", ("/data/checkout",))
    assert is_outside("/data/shared/specs/x.md", ("/data/checkout", "/tmp"))
    assert not is_outside("relative/file.txt", (os.getcwd(),))  # relative paths count from the current folder


def test_the_hook_records_only_outside_paths(tmp_path):
    audit = ReadAudit(allowed_roots())
    audit("open", (str(tmp_path / "a.txt"), "r", 0))
    audit("open", ("/nonexistent-home/user/.config/x", "r", 0))
    audit("open", (3, "r", 0))  # a file descriptor
    audit("os.listdir", ("/nonexistent-home",))
    assert list(audit.outside) == ["/nonexistent-home/user/.config/x"]


def test_the_session_hook_is_installed(tmp_path):
    import read_audit

    audit = read_audit.SESSION_AUDIT
    assert audit is not None and audit.active
    before = dict(audit.outside)
    (tmp_path / "inside.txt").write_text("x")  # through the real hook: inside, so not recorded
    assert audit.outside == before
    assert not is_outside(os.environ["MPLCONFIGDIR"], (tempfile.gettempdir(),))
    assert "FREQDENSE_CACHE" in os.environ and not is_outside(os.environ["FREQDENSE_CACHE"], allowed_roots())
