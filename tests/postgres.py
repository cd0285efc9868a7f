"""A throwaway PostgreSQL server for tests: `postgres_url` fixture (module scope).

Starts `scripts/postgres.sh start DIR` (Debian's server binaries, trust auth, 127.0.0.1, a free port,
run as the `postgres` user when the tests run as root) and stops it afterwards. Skips, with the
reason, when the binaries, the psycopg2 driver or a startable server are missing; CI installs the
server first with `bash scripts/postgres.sh install`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


def start_server() -> tuple[str, str]:
    """(SQLAlchemy URL, server dir); `pytest.skip` with the reason when no server can be started."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL driver psycopg2 missing: pip install 'hybridsearch[postgres]'")
    if shutil.which("bash") is None:
        pytest.skip("bash missing: scripts/postgres.sh cannot run")
    root = tempfile.mkdtemp(prefix="hs-pg-")  # under /tmp: the postgres user must reach it
    res = subprocess.run(["bash", str(SCRIPT), "start", root], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        why = (res.stderr.strip().splitlines() or [f"exit code {res.returncode}"])[-1]
        pytest.skip(f"no PostgreSQL server could be started ({why}); run `bash scripts/postgres.sh install`")
    return res.stdout.strip().splitlines()[-1], root


def stop_server(root: str) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop", root], capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url():
    url, root = start_server()
    try:
        yield url
    finally:
        stop_server(root)
