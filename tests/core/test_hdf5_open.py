"""Opening cube files read-only: a truncated copy is refused at once, a whole file opens."""

import h5py
import numpy as np
import pytest
from dwellwise.planners.request import ScanRefused
from dwellwise.planners.resume import read_resume_state

from dwellwise.hdf5_open import open_readonly, stored_end_of_file


@pytest.mark.parametrize("libver", ["earliest", "latest"])
@pytest.mark.parametrize("userblock", [0, 1024])
def test_the_recorded_end_of_file_is_the_size_of_a_whole_file(tmp_path, libver, userblock):
    path = tmp_path / "whole.h5"
    with h5py.File(path, "w", libver=libver, userblock_size=userblock) as f:
        f["counts"] = np.arange(10_000, dtype=np.uint32)
    assert stored_end_of_file(path) == path.stat().st_size
    with open_readonly(path) as f:
        assert f["counts"][-1] == 9_999


def test_a_truncated_copy_is_refused_with_what_to_do(tmp_path):
    whole = tmp_path / "whole.h5"
    with h5py.File(whole, "w", libver="latest") as f:
        f.create_dataset("counts", data=np.ones((64, 4096), np.uint32), chunks=(1, 4096))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[:40_000])
    with pytest.raises(OSError, match=r"truncated file: 40000 of the \d+ bytes .* copy it again"):
        open_readonly(cut)
    with pytest.raises(ScanRefused, match="truncated file"):
        read_resume_state(cut)


def test_a_file_without_a_superblock_has_no_recorded_end(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_bytes(b"not hdf5 " * 100)
    assert stored_end_of_file(path) is None
