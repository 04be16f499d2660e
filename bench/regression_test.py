"""Tests of bench/regression.py, the CI speed check, on fabricated benchmark
results: a CPU without a baseline passes with a notice, a recorded baseline
passes on the same speeds, a slow kernel fails, and a memory-bound kernel is
judged against the memory bandwidth of the same run, not the FMA peak."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "regression.py")
from bench import regression

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+ @ 2.0GHz
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile

processor\t: 1
model name\t: ignored
"""


def fake_results(scale=None, fma=100e9, triad=50e9, bf16=200e9):
    """Google Benchmark JSON for every check and peak: each check at 0.5 of
    its peak, times scale[name] where given."""
    scale = scale or {}
    entries = []

    def add(binary, name, counter, value):
        for rep in range(2):  # the best repetition counts
            entries.append({"run_name": f"{binary}:{name}",
                            "run_type": "iteration",
                            counter: value * (0.9 if rep else 1.0)})

    peaks = {"fma": fma, "triad": triad, "bf16": bf16}
    for binary, name, counter, kind in regression.CHECKS:
        add(binary, name, counter, 0.5 * peaks[kind] * scale.get(name, 1.0))
    for binary in {c[0] for c in regression.CHECKS}:
        for kind, (name, counter) in regression.PEAKS.items():
            add(binary, name, counter, peaks[kind])
    return json.dumps({"benchmarks": entries})


class RegressionTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.cpuinfo = self.write("cpuinfo", CPUINFO)
        self.baselines = os.path.join(self.dir, "baselines")

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_checker(self, *args):
        p = subprocess.run(
            [sys.executable, SCRIPT, "--cpuinfo", self.cpuinfo,
             "--baseline_dir", self.baselines, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout

    def recorded(self):
        """The benchmarks of the one baseline file recorded."""
        [name] = os.listdir(self.baselines)
        with open(os.path.join(self.baselines, name)) as f:
            return json.load(f)["benchmarks"]

    def record(self, runs):
        files = [self.write(f"run{i}.json", text)
                 for i, text in enumerate(runs)]
        rc, out = self.run_checker(
            "--update", *[a for f in files for a in ("--results", f)])
        self.assertEqual(rc, 0, out)
        return out

    def test_cpu_key_names_model_and_features(self):
        key, description, flags = regression.read_cpu(self.cpuinfo)
        self.assertEqual(key,
                         "intel-xeon-platinum-8480-f6m143_avx2-avx512-"
                         "avx512bf16-amx")
        self.assertIn("Platinum 8480+", description)
        self.assertIn("avx512_bf16", flags)

    def test_bf16_checks_skipped_without_avx512_bf16(self):
        self.cpuinfo = self.write(
            "cpuinfo", CPUINFO.replace(" avx512_bf16 amx_bf16 amx_tile", ""))
        self.record([fake_results()])
        self.assertNotIn("BM_GemmBf16/n:512/threads:1", self.recorded())
        rc, out = self.run_checker("--results",
                                   self.write("now.json", fake_results()))
        self.assertEqual(rc, 0, out)
        self.assertIn("skipped     BM_GemmBf16/n:512/threads:1: no AVX512-BF16",
                      out)
        bf16_checks = [c for c in regression.CHECKS if c[3] == "bf16"]
        self.assertEqual(len(bf16_checks), 2)
        self.assertIn(f"bench: {len(regression.CHECKS) - 2} ok, 0 failed", out)

    def test_bf16_kernel_is_judged_by_the_bf16_peak(self):
        self.record([fake_results()])
        # Twice the VDPBF16PS peak and twice the bf16 GEMM speed, the same
        # FMA peak: not a change.
        rc, out = self.run_checker("--results", self.write(
            "fast.json", fake_results(bf16=400e9)))
        self.assertEqual(rc, 0, out)
        # Half the bf16 GEMM speed on the same machine fails.
        rc, out = self.run_checker("--results", self.write(
            "slow.json", fake_results({"BM_GemmBf16/n:512/threads:1": 0.5})))
        self.assertEqual(rc, 1, out)
        self.assertRegex(out,
                         r"REGRESSION  BM_GemmBf16/n:512/threads:1 +0\.50x")
        self.assertIn("1 failed", out)

    def test_unknown_cpu_passes_with_notice(self):
        rc, out = self.run_checker("--results",
                                   self.write("r.json", fake_results()))
        self.assertEqual(rc, 0, out)
        self.assertIn("no baseline for this CPU", out)
        self.assertIn("--update --runs 10", out)
        self.assertIn("measured    BM_Gemm/n:256/threads:1", out)

    def test_same_speed_passes(self):
        self.record([fake_results()])
        rc, out = self.run_checker("--results",
                                   self.write("now.json", fake_results()))
        self.assertEqual(rc, 0, out)
        self.assertIn(f"bench: {len(regression.CHECKS)} ok, 0 failed", out)

    def test_slow_kernel_fails(self):
        self.record([fake_results()])
        slow = fake_results({"BM_Gemm/n:512/threads:1": 0.7})  # 30% slower
        rc, out = self.run_checker("--results", self.write("now.json", slow))
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"REGRESSION  BM_Gemm/n:512/threads:1 +0\.70x")
        self.assertIn("1 failed", out)

    def test_faster_machine_is_not_a_regression(self):
        # The same code on a machine with twice the FMA peak and half the
        # memory bandwidth: every ratio to its own peak is unchanged.
        self.record([fake_results()])
        other = fake_results(fma=200e9, triad=25e9)
        rc, out = self.run_checker("--results", self.write("now.json", other))
        self.assertEqual(rc, 0, out)

    def test_memory_bound_kernel_is_judged_by_bandwidth(self):
        self.record([fake_results()])
        name = "BM_BatchNormTrainForward/bn_lenet_conv1/threads:1"
        # Half the bandwidth-normalised speed fails...
        rc, out = self.run_checker("--results", self.write(
            "slow.json", fake_results({name: 0.5})))
        self.assertEqual(rc, 1, out)
        self.assertIn(f"REGRESSION  {name}", out)

    def test_thresholds_follow_the_measured_spread(self):
        quiet = [fake_results(), fake_results()]
        noisy_name = "BM_AvgPool2dForward/lenet_pool1/threads:1"
        noisy = [fake_results(), fake_results({noisy_name: 0.9})]
        self.record(quiet)
        self.assertEqual(self.recorded()[noisy_name]["threshold"],
                         regression.MAX_THRESHOLD)
        self.record(noisy)
        recorded = self.recorded()
        # Spread 0.1 / 0.95: threshold 1 - 3 * 0.105.
        self.assertAlmostEqual(recorded[noisy_name]["spread"], 0.1053, 3)
        self.assertEqual(recorded[noisy_name]["threshold"], 0.68)

    def test_missing_benchmark_fails(self):
        self.record([fake_results()])
        data = json.loads(fake_results())
        data["benchmarks"] = [b for b in data["benchmarks"]
                              if "GemmNT" not in b["run_name"]]
        rc, out = self.run_checker("--results",
                                   self.write("now.json", json.dumps(data)))
        self.assertEqual(rc, 1, out)
        self.assertIn("MISSING     BM_GemmNT/m:64/n:576/k:576: did not run", out)


if __name__ == "__main__":
    unittest.main()
