"""What the commands' console hides: the optional-kernel warnings bitsandbytes and kernels log when imported."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

# As every command starts: the framework's environment (Hub offline), Hydra's console handler, quiet_console().
IMPORT_AFTER_QUIET_CONSOLE = """
import logging
from adir_exp.paths import configure_environment
configure_environment()
logging.basicConfig(level=logging.INFO)
from adir_exp.cli.console import quiet_console
quiet_console()
import bitsandbytes
logging.getLogger("bitsandbytes.backends.cpu.ops").error("an error still shows")
"""


def test_importing_bitsandbytes_prints_no_kernel_warning_but_errors_still_show() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", IMPORT_AFTER_QUIET_CONSOLE], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Skipping publisher trust check" not in result.stderr
    assert "Failed to load CPU gemm_4bit_forward" not in result.stderr
    assert "an error still shows" in result.stderr
