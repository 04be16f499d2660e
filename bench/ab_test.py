"""Tests of bench/ab.py, the A/B speed check: its exact Mann-Whitney U
distribution against counting by hand, and its verdicts on fabricated
benchmark binaries (scripts that print Google Benchmark JSON with noise): a
20% slower head fails, an equal one and a 3% slower one pass, and a
benchmark the base lacks is reported, not failed."""

import contextlib
import io
import itertools
import os
import random
import stat
import sys
import tempfile
import unittest

from bench import ab
from bench import regression

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9R14
cpu family\t: 25
model\t\t: 17
flags\t\t: fpu avx2 avx512f avx512_bf16
"""

# A benchmark binary: prints each check its --benchmark_filter names at
# SPEED x (1 + uniform noise of NOISE), except the names in SKIP.
FAKE = """#!{python}
import json, random, re, sys
speed, noise, skip = {speed!r}, {noise!r}, {skip!r}
pattern = next(a for a in sys.argv if a.startswith("--benchmark_filter="))
# "--benchmark_filter=^(A|B)(/real_time)?$", each name re.escape()d.
alternatives = pattern[len("--benchmark_filter=^("):-len(")(/real_time)?$")]
out = []
for name in alternatives.split("|"):
    name = re.sub(r"\\\\(.)", r"\\1", name)
    if name in skip:
        continue
    value = speed * (1 + noise * (2 * random.random() - 1))
    # Wall time twice the CPU time: a busy machine, which must not matter.
    out.append({{"run_name": name + "/real_time", "run_type": "iteration",
                "real_time": 2.0, "cpu_time": 1.0,
                "FLOPS": value / 2, "bytes_per_second": value / 2,
                "items_per_second": value / 2}})
print(json.dumps({{"benchmarks": out}}))
"""


def brute_cdf(u, n, m):
    """P(U <= u) by listing every placement of n x's among n + m ranks."""
    hits = total = 0
    for xs in itertools.combinations(range(n + m), n):
        ys = [r for r in range(n + m) if r not in xs]
        hits += ab.u_statistic(xs, ys) <= u
        total += 1
    return hits / total


class StatisticsTest(unittest.TestCase):

    def test_u_distribution_is_exact(self):
        for n, m in [(1, 1), (1, 4), (3, 4), (4, 3), (5, 5)]:
            for u in range(n * m + 1):
                self.assertAlmostEqual(ab.u_cdf(u, n, m), brute_cdf(u, n, m),
                                       msg=f"n={n} m={m} u={u}")

    def test_u_counts_pairs_and_half_ties(self):
        self.assertEqual(ab.u_statistic([1, 5], [2, 3, 4]), 3)
        self.assertEqual(ab.u_statistic([2], [2]), 0.5)

    def test_p_value(self):
        base = [100.0 + i for i in range(8)]
        # Every head sample below 0.9 x every base sample: the smallest p.
        slow = [80.0 + i for i in range(8)]
        self.assertAlmostEqual(ab.slower_p_value(slow, base, 0.10),
                               1 / 12870)
        # The same speed is nowhere near 10% slower.
        self.assertGreater(ab.slower_p_value(base, base, 0.10), 0.5)


class CheckTest(unittest.TestCase):

    def setUp(self):
        random.seed(1)
        self.tmp = tempfile.TemporaryDirectory()
        self.cpuinfo = os.path.join(self.tmp.name, "cpuinfo")
        with open(self.cpuinfo, "w") as f:
            f.write(CPUINFO)

    def tearDown(self):
        self.tmp.cleanup()

    def build(self, name, speed, noise=0.03, skip=()):
        """A bench/ directory of fake binaries at `speed`."""
        d = os.path.join(self.tmp.name, name)
        os.makedirs(d)
        for binary in dict.fromkeys(c[0] for c in regression.CHECKS):
            path = os.path.join(d, binary)
            with open(path, "w") as f:
                f.write(FAKE.format(python=sys.executable, speed=speed,
                                    noise=noise, skip=list(skip)))
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return d

    def run_ab(self, base, head):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = ab.main([f"--base_bin_dir={base}", f"--head_bin_dir={head}",
                          f"--cpuinfo={self.cpuinfo}", "--rounds=6"])
        return rc, out.getvalue()

    def test_fake_binary_answers_its_filter(self):
        d = self.build("x", 100.0, noise=0)
        checks = [c for c in regression.CHECKS if c[0] == "gemm_benchmark"][:2]
        got = ab.run_once(os.path.join(d, "gemm_benchmark"), checks, 0.01)
        self.assertEqual(sorted(got), sorted(c[1] for c in checks))
        # 50 per second of wall time, half of it CPU time: 100 per CPU second.
        self.assertEqual(got[checks[0][1]], 100.0)

    def test_twenty_percent_slower_fails(self):
        rc, out = self.run_ab(self.build("base", 100.0),
                              self.build("head", 80.0))
        self.assertEqual(rc, 1, out)
        self.assertEqual(out.count("REGRESSION "), len(regression.CHECKS), out)
        self.assertIn(f"ab: 0 ok, {len(regression.CHECKS)} failed", out)

    def test_same_speed_passes(self):
        rc, out = self.run_ab(self.build("base", 100.0, noise=0.08),
                              self.build("head", 100.0, noise=0.08))
        self.assertEqual(rc, 0, out)
        self.assertNotIn("REGRESSION", out)

    def test_small_slowdown_passes(self):
        rc, out = self.run_ab(self.build("base", 100.0),
                              self.build("head", 97.0))
        self.assertEqual(rc, 0, out)

    def test_benchmark_new_in_head_is_not_compared(self):
        new = "BM_TrainStep/lenet/threads:1"
        rc, out = self.run_ab(self.build("base", 100.0, skip=[new]),
                              self.build("head", 100.0))
        self.assertEqual(rc, 0, out)
        self.assertIn(f"new         {new}: not in the base build", out)

    def test_benchmark_missing_from_head_fails(self):
        gone = "BM_Gemm/n:512/threads:1"
        rc, out = self.run_ab(self.build("base", 100.0),
                              self.build("head", 100.0, skip=[gone]))
        self.assertEqual(rc, 1, out)
        self.assertIn(f"MISSING     {gone}: ran 0 of 6 rounds", out)


if __name__ == "__main__":
    unittest.main()
