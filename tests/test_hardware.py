"""keep_freed_memory: a freed large block is reused, not page-faulted back in from the OS."""

import subprocess
import sys

import pytest

COUNT_FAULTS = """
import ctypes, resource, sys, torch
from common.config.hardware import keep_freed_memory
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4 kB pages even where huge pages are 'always'
if sys.argv[1] == "keep":
    assert keep_freed_memory()
for _ in range(12):  # 64 MB allocated and freed: glibc's heap settles (its holes fit the next block) first
    torch.zeros(16 * 2**20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.zeros(16 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_64_mb_block_is_reused_without_page_faults(repo):
    def faults(mode):
        done = subprocess.run([sys.executable, "-c", COUNT_FAULTS, mode], cwd=repo, capture_output=True, text=True,
                              check=True)
        return int(done.stdout.split()[-1])

    pages = 5 * 64 * 2**20 // 4096  # 81,920 pages of 4 kB, if every zeroing faults each page in again
    assert faults("default") > pages // 2  # glibc unmaps blocks above 32 MB on free
    assert faults("keep") < pages // 100
