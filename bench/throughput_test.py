"""bench/throughput's result line is JSON that compare_pytorch.py can read,
whatever the CPU description holds (it once held "FMA's", which an escaper
for C wrote as the invalid JSON escape \\')."""

import json
import subprocess
import sys
import unittest

BINARY = None  # argv[1]: //bench:throughput


def run(*flags):
    out = subprocess.run([BINARY, "--steps=1", "--warmup=0", "--threads=1",
                          *flags], check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


class ThroughputTest(unittest.TestCase):

    def test_train_line(self):
        r = run("--model=softmax", "--mode=train")
        self.assertEqual((r["framework"], r["model"], r["mode"]),
                         ("dive", "softmax", "train"))
        self.assertGreater(r["examples_per_sec"], 0)
        self.assertGreater(r["loss"], 0)
        self.assertGreater(r["peak_rss_mb"], 0)
        self.assertIn("kernels:", r["cpu"])

    def test_infer_line_has_no_loss(self):
        r = run("--model=lenet", "--mode=infer", "--precision=bf16")
        self.assertIsNone(r["loss"])
        self.assertEqual(r["precision"], "bf16")

    def test_int8_infer_line(self):
        r = run("--model=lenet", "--mode=infer", "--precision=int8")
        self.assertEqual((r["mode"], r["precision"]), ("infer", "int8"))
        self.assertIsNone(r["loss"])
        self.assertGreater(r["examples_per_sec"], 0)
        features = r["cpu"].split("kernels:")[0]
        self.assertEqual(r["peak"] == "vpdpbusd", "avx512_vnni" in features,
                         r["cpu"])
        failed = subprocess.run([BINARY, "--model=lenet", "--mode=train",
                                 "--precision=int8"], stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True)
        self.assertEqual(failed.returncode, 2)
        self.assertIn("--precision=int8 needs --mode=infer", failed.stderr)

    def test_flops_and_fraction_of_peak(self):
        # Softmax regression at 28 x 28: one Linear(784, 10) of 7,840
        # multiply-adds per image, 3 passes' worth in a training step.
        train = run("--model=softmax", "--mode=train")
        infer = run("--model=softmax", "--mode=infer")
        self.assertEqual(infer["flops_per_example"], 2 * 7840)
        self.assertEqual(train["flops_per_example"], 3 * 2 * 7840)
        for r in (train, infer):
            self.assertEqual(r["peak"], "fma")  # fp32
            self.assertGreater(r["peak_gflops"], 0)
            want = (r["examples_per_sec"] * r["flops_per_example"]
                    / (r["peak_gflops"] * 1e9))
            self.assertAlmostEqual(r["fraction_of_peak"], want,
                                   delta=0.002 + 0.01 * want)
            self.assertLess(r["fraction_of_peak"], 1.5)
        bf16 = run("--model=lenet", "--mode=infer", "--precision=bf16")
        # bf16 products are held against VDPBF16PS where the CPU has it.
        features = bf16["cpu"].split("kernels:")[0]
        self.assertEqual(bf16["peak"] == "vdpbf16ps",
                         "avx512_bf16" in features, bf16["cpu"])


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
