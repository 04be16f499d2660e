"""safetensors_io reads what dive's C++ writer writes, round-trips its own
files and names the problem of every malformed one."""

import os
import struct
import subprocess
import sys
import tempfile
import unittest

from models import safetensors_io
from models.safetensors_io import Entry

SAMPLE_BINARY = None  # argv[1]: //models:safetensors_sample


def header_file(header_json, data=b""):
    h = header_json.encode()
    return struct.pack("<Q", len(h)) + h + data


class SafetensorsIoTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_reads_what_cpp_writes(self):
        path = self.path("sample.safetensors")
        subprocess.run([SAMPLE_BINARY, path], check=True)
        tensors, metadata = safetensors_io.read(path)
        self.assertEqual(metadata, {"epoch": "3"}, "the CRC is checked, not kept")
        self.assertEqual(sorted(tensors), ["h", "q", "steps", "u", "w"])
        self.assertEqual(tensors["w"].dtype, "F32")
        self.assertEqual(tensors["w"].shape, [2, 3])
        self.assertEqual(safetensors_io.values(tensors["w"]),
                         [0, 0.5, 1, 1.5, 2, 2.5])
        self.assertEqual(tensors["steps"].dtype, "I64")
        self.assertEqual(safetensors_io.values(tensors["steps"]), [7, -3])
        self.assertEqual(tensors["q"].dtype, "I8")
        self.assertEqual(safetensors_io.values(tensors["q"]), [-128, 0, 127])
        self.assertEqual(tensors["u"].dtype, "U8")
        self.assertEqual(safetensors_io.values(tensors["u"]), [0, 255])
        self.assertEqual(tensors["h"].dtype, "BF16")
        self.assertEqual(tensors["h"].shape, [3])
        self.assertEqual(safetensors_io.values(tensors["h"]),
                         [1.0, -2.5, 0.15625])

    def test_a_damaged_cpp_file_fails_its_checksum(self):
        path = self.path("sample.safetensors")
        subprocess.run([SAMPLE_BINARY, path], check=True)
        with open(path, "r+b") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([last[0] ^ 1]))
        with self.assertRaisesRegex(ValueError, "checksum mismatch"):
            safetensors_io.read(path)

    def test_an_edited_cpp_header_fails_its_checksum(self):
        path = self.path("sample.safetensors")
        subprocess.run([SAMPLE_BINARY, path], check=True)
        with open(path, "rb") as f:
            raw = f.read()
        edited = raw.replace(b'"epoch":"3"', b'"epoch":"4"')
        self.assertNotEqual(edited, raw)
        with self.assertRaisesRegex(ValueError, "header checksum mismatch"):
            safetensors_io.parse(edited, path)

    def test_round_trip(self):
        path = self.path("out.safetensors")
        tensors = {
            "b": Entry("I32", [3], struct.pack("<3i", 1, -2, 3)),
            "a": Entry("F32", [1, 2], struct.pack("<2f", 0.25, -4.0)),
            "empty": Entry("F32", [0, 5], b""),
            "q": Entry("I8", [3], struct.pack("<3b", -128, 5, 127)),
            "u": Entry("U8", [1, 3], bytes([0, 7, 255])),
            "h": Entry("BF16", [2], struct.pack("<2H", 0x3F80, 0xC020)),
        }
        safetensors_io.write(path, tensors, {"epoch": 7})
        got, metadata = safetensors_io.read(path)
        self.assertEqual(got, tensors)
        self.assertEqual(metadata, {"epoch": "7"})
        self.assertEqual(safetensors_io.values(got["h"]), [1.0, -2.5])
        self.assertEqual(safetensors_io.values(got["q"]), [-128, 5, 127])
        with open(path, "rb") as f:
            raw = f.read()
        with self.assertRaisesRegex(ValueError, "header checksum mismatch"):
            safetensors_io.parse(raw.replace(b'"epoch":"7"', b'"epoch":"8"'))
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        self.assertEqual(n % 8, 0, "data section aligned to 8 bytes")

    def test_write_refuses_a_planted_symlink(self):
        target = self.path("victim")
        with open(target, "w") as f:
            f.write("keep me")
        link = self.path("out.safetensors")
        os.symlink(target, link)
        with self.assertRaisesRegex(ValueError, "not a regular file"):
            safetensors_io.write(link, {})
        with open(target) as f:
            self.assertEqual(f.read(), "keep me")
        self.assertEqual(sorted(os.listdir(self.dir.name)),
                         ["out.safetensors", "victim"], "no temporary left")

    def test_write_checks_sizes(self):
        with self.assertRaisesRegex(ValueError, "a: 4 bytes for F32 \\[2\\]"):
            safetensors_io.serialize({"a": Entry("F32", [2], b"\0" * 4)})
        with self.assertRaisesRegex(ValueError, "unsupported dtype 'F16'"):
            safetensors_io.serialize({"a": Entry("F16", [1], b"\0" * 2)})

    def test_malformed_files_name_the_problem(self):
        cases = [
            (b"\x01\x02", "too short"),
            (struct.pack("<Q", 1 << 40) + b"{}", "header length 1099511627776 exceeds"),
            (header_file("[1, 2]"), "not a JSON object"),
            (header_file("{not json"), "header is not JSON"),
            (header_file('{"__metadata__": 3}'), "__metadata__ is not a JSON object"),
            (header_file('{"x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}',
                         b"\0" * 8), "x: unsupported dtype 'F64'"),
            (header_file('{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}',
                         b"\0" * 4), "x: bad shape"),
            (header_file('{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}',
                         b"\0" * 8), "x: bad data_offsets 0, 16 for F32 \\[4\\] in 8"),
            (header_file('{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}'),
             "x: bad data_offsets"),
            (header_file('{"x": 5}'), "x: not a tensor entry"),
        ]
        for raw, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(ValueError, "^f.st: .*" + message):
                    safetensors_io.parse(raw, "f.st")


if __name__ == "__main__":
    SAMPLE_BINARY = sys.argv.pop(1)
    unittest.main()
