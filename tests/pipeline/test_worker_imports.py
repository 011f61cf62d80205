"""What a worker process imports at start: every worker pays for it, at each (re)start."""

from __future__ import annotations

import subprocess
import sys

from tests.support.workers import ROOT


def test_workers_do_not_import_aiogram():
    """aiogram's ~450 pydantic models took 6 s to import on this machine (no bytecode cache):
    a worker restarted after a crash came back that much later. Workers talk to the Bot API
    through ``bot.botapi`` (aiohttp alone); one import of ``bot.replies`` from it pulled aiogram in."""
    probe = "import sys, actors; print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiogram'))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
