#!/usr/bin/env python3
"""Minimal offline replacement for Bazel's CoverageOutputGenerator.

Two modes, chosen by the flags Bazel passes:
  * per-test merger (collect_coverage.sh):
      --coverage_dir=DIR --output_file=F [--filter_sources=REGEX ...]
    merges DIR/**/*.gcov.json.gz (gcc >= 9) and DIR/**/*.dat (lcov) into F.
  * combined report (`--combined_report=lcov`):
      --reports_file=LIST --output_file=F
    merges the lcov files named in LIST into F.
Unknown flags are ignored.
"""

import collections
import gzip
import json
import os
import re
import sys


class FileCov:
    def __init__(self):
        self.lines = collections.defaultdict(int)  # line -> count
        self.fn_line = {}  # name -> start line
        self.fn_count = collections.defaultdict(int)  # name -> count


def parse_args(argv):
    opts = collections.defaultdict(list)
    for a in argv:
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            opts[k].append(v)
    return opts


def add_gcov_json(path, cov):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        doc = json.load(f)
    for fi in doc.get("files", []):
        fc = cov[fi["file"]]
        for fn in fi.get("functions", []):
            name = fn.get("name") or fn.get("demangled_name")
            fc.fn_line.setdefault(name, fn.get("start_line", 0))
            fc.fn_count[name] += fn.get("execution_count", 0)
        for ln in fi.get("lines", []):
            fc.lines[ln["line_number"]] += ln.get("count", 0)


def add_lcov(path, cov):
    fc = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith("SF:"):
                fc = cov[line[3:]]
            elif fc is None:
                continue
            elif line.startswith("DA:"):
                parts = line[3:].split(",")
                fc.lines[int(parts[0])] += int(parts[1])
            elif line.startswith("FN:"):
                ln, name = line[3:].split(",", 1)
                fc.fn_line.setdefault(name, int(ln))
            elif line.startswith("FNDA:"):
                cnt, name = line[5:].split(",", 1)
                fc.fn_count[name] += int(cnt)
            elif line == "end_of_record":
                fc = None


def write_lcov(cov, out, filters):
    with open(out, "w", encoding="utf-8") as f:
        for src in sorted(cov):
            if any(r.match(src) for r in filters):
                continue
            fc = cov[src]
            f.write("SF:%s\n" % src)
            for name, ln in sorted(fc.fn_line.items(), key=lambda kv: kv[1]):
                f.write("FN:%d,%s\n" % (ln, name))
            for name in sorted(fc.fn_line, key=lambda n: fc.fn_line[n]):
                f.write("FNDA:%d,%s\n" % (fc.fn_count.get(name, 0), name))
            f.write("FNF:%d\n" % len(fc.fn_line))
            f.write("FNH:%d\n" % sum(1 for n in fc.fn_line if fc.fn_count.get(n, 0)))
            for ln in sorted(fc.lines):
                f.write("DA:%d,%d\n" % (ln, fc.lines[ln]))
            f.write("LH:%d\n" % sum(1 for c in fc.lines.values() if c))
            f.write("LF:%d\n" % len(fc.lines))
            f.write("end_of_record\n")


def main(argv):
    opts = parse_args(argv)
    out = (opts.get("output_file") or [None])[-1]
    if not out:
        sys.stderr.write("lcov_merger: --output_file is required\n")
        return 1
    filters = [re.compile(r) for r in opts.get("filter_sources", [])]
    cov = collections.defaultdict(FileCov)
    inputs = []
    for d in opts.get("coverage_dir", []):
        for root, _, files in os.walk(d):
            for name in files:
                inputs.append(os.path.join(root, name))
    for lst in opts.get("reports_file", []):
        with open(lst) as f:
            inputs.extend(l.strip() for l in f if l.strip())
    for p in sorted(inputs):
        if os.path.abspath(p) == os.path.abspath(out):
            continue
        try:
            if p.endswith(".gcov.json.gz"):
                add_gcov_json(p, cov)
            elif p.endswith(".dat"):
                add_lcov(p, cov)
        except (OSError, ValueError) as e:
            sys.stderr.write("lcov_merger: skipping %s: %s\n" % (p, e))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    write_lcov(cov, out, filters)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
