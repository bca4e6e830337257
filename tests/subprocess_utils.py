"""Run Python code in a fresh interpreter in which this project's packages cannot be imported.

That is the situation of a user who only has transformers/diffusers and a converted checkpoint: anything that
still works there works through `trust_remote_code`, not through our installed package.
"""

import os
import subprocess
import sys
import textwrap


BLOCKED_PACKAGES = ("transformers_llada_uni", "diffusers_llada_uni", "llada_uni_cli")

_PRELUDE = f"""
import sys
class _Blocker:
    blocked = {BLOCKED_PACKAGES!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{{name}} is blocked in this test")
        return None
sys.meta_path.insert(0, _Blocker())
for _name in _Blocker.blocked:  # the blocker itself is checked, so no test can pass through the installed package
    try:
        __import__(_name)
        raise SystemExit(f"{{_name}} must not be importable here")
    except ImportError:
        pass
"""


def run_without_package(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    script = _PRELUDE + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
