"""A long run keeps resident memory flat: 500 tiny steps through the real session (metrics file,
evals, checkpoints), current RSS at step 50 vs step 500 within 10 % (bench/memory_flat.py, run
in its own process so nothing else in the test session moves the numbers)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rss_is_flat_over_500_steps():
    out = subprocess.run([sys.executable, "bench/memory_flat.py", "--steps", "500", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rss = {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"].items()}
    assert set(rss) >= {50, 500}, rss
    growth = (rss[500] - rss[50]) / rss[50]
    print(f"\nRSS MB: step 50 {rss[50]:.1f}, step 500 {rss[500]:.1f} ({100 * growth:+.1f} %)")
    assert abs(growth) < 0.10, rss
