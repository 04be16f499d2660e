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


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main()
