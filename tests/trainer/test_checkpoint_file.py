"""The checkpoint file on its own: a foreign file is refused, a full disk loses nothing."""

from __future__ import annotations

import errno
import os

import pytest

pytest.importorskip("torch")

from reference_trainer.run_dir import checkpoint


def test_a_checkpoint_without_the_trainers_keys_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save_atomic(path, {"step": 3})
    with pytest.raises(ValueError, match=r"lacks .*'policy'.*not written by this trainer"):
        checkpoint.load(path)


def test_a_full_disk_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save_atomic(path, {"step": 1})
    before = path.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match=r"could not write .*checkpoint\.pt.*No space left"):
        checkpoint.save_atomic(path, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
