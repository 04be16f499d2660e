"""A safetensors reader and writer in the Python standard library alone
(struct, json, zlib, array), for the scripts around dive's checkpoints:
models/pytorch_twins.py wraps the bytes in torch tensors.

    tensors, metadata = safetensors_io.read("/tmp/lenet/model.safetensors")
    w = tensors["0.weight"]           # Entry(dtype="F32", shape=[6, 1, 5, 5], data=b"...")
    safetensors_io.values(w)[:3]      # the first floats, as a Python list
    safetensors_io.write("/tmp/copy.safetensors", tensors, metadata)

Format: [8-byte little-endian header length N][N bytes of JSON header][data]
with header {name: {"dtype": "F32"|"I64"|"I32"|"I8"|"U8"|"BF16", "shape": [...],
"data_offsets": [begin, end]}, "__metadata__": {str: str}}; offsets are
relative to the data section. dive's C++ writer stores a CRC-32 of the data
section as "__metadata__"["dive.crc32"] (decimal) and a CRC-32 of the header
as "__metadata__"["dive.header_crc32"]: of the header as that writer spells
it (tensor/safetensors.cc's HeaderJson: metadata first, then the tensors in
name order, no spaces), without its own key. `read` checks each one present
(and leaves them out of the metadata it returns), `write` stores both.
Every malformed file is a ValueError that names the file and the problem.
"""

import array
import collections
import json
import os
import stat
import struct
import sys
import zlib

# dtype name -> (array typecode, bytes per element); BF16's elements are
# read as their 16 bits ("H") and `values` widens them to floats.
DTYPES = {"F32": ("f", 4), "I64": ("q", 8), "I32": ("i", 4), "I8": ("b", 1),
          "U8": ("B", 1), "BF16": ("H", 2)}
CRC_KEY = "dive.crc32"
HEADER_CRC_KEY = "dive.header_crc32"

Entry = collections.namedtuple("Entry", ["dtype", "shape", "data"])


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _check_entry(path, name, info, data_size):
    """The checked (dtype, shape, begin, end) of one header entry."""
    if not isinstance(info, dict):
        raise ValueError(f"{path}: {name}: not a tensor entry")
    dtype = info.get("dtype")
    if dtype not in DTYPES:
        raise ValueError(f"{path}: {name}: unsupported dtype {dtype!r}")
    shape = info.get("shape")
    if (not isinstance(shape, list) or
            not all(isinstance(d, int) and d >= 0 for d in shape)):
        raise ValueError(f"{path}: {name}: bad shape {shape!r}")
    offsets = info.get("data_offsets")
    if (not isinstance(offsets, list) or len(offsets) != 2 or
            not all(isinstance(o, int) for o in offsets)):
        raise ValueError(f"{path}: {name}: bad data_offsets {offsets!r}")
    begin, end = offsets
    if (begin < 0 or end > data_size or
            end - begin != numel(shape) * DTYPES[dtype][1]):
        raise ValueError(f"{path}: {name}: bad data_offsets {begin}, {end} "
                         f"for {dtype} {shape} in {data_size} data bytes")
    return dtype, shape, begin, end


def _quote(text):
    """`text` as a JSON string, as dive's writer (nlohmann/json, through
    tensor/json.h) writes it: quotes and backslashes escaped, \\b \\f \\n
    \\r \\t, other control characters as \\u00xx, the rest as is; which is
    what json.dumps writes without ensure_ascii."""
    return json.dumps(text, ensure_ascii=False)


def _header_crc(offsets, metadata):
    """The CRC-32 of the header of tensors {name: (dtype, shape, begin,
    end)} and `metadata` (without the header CRC's key), as dive spells it."""
    meta = ",".join(f"{_quote(k)}:{_quote(str(v))}"
                    for k, v in sorted(metadata.items()))
    parts = ['"__metadata__":{' + meta + "}"]
    for name in sorted(offsets):
        dtype, shape, begin, end = offsets[name]
        parts.append(f'{_quote(name)}:{{"dtype":"{dtype}","shape":['
                     f'{",".join(str(d) for d in shape)}],"data_offsets":['
                     f"{begin},{end}]}}")
    text = "{" + ",".join(parts) + "}"
    return str(zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF)


def parse(raw, path="<bytes>"):
    """(tensors: dict name -> Entry, metadata: dict) of a file's bytes."""
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: __metadata__ is not a JSON object")
    metadata = dict(metadata)
    header_crc = metadata.pop(HEADER_CRC_KEY, None)
    offsets = {name: _check_entry(path, name, info, len(data))
               for name, info in header.items()}
    if header_crc is not None:
        if CRC_KEY not in metadata:
            raise ValueError(f"{path}: the header has a checksum but the "
                             "data has none")
        if _header_crc(offsets, metadata) != str(header_crc):
            raise ValueError(f"{path}: header checksum mismatch (metadata, "
                             "names, dtypes, shapes or offsets changed)")
    if CRC_KEY in metadata:
        expected = metadata.pop(CRC_KEY)
        if str(zlib.crc32(data) & 0xFFFFFFFF) != str(expected):
            raise ValueError(f"{path}: checksum mismatch (data damaged)")
    tensors = {name: Entry(dtype, shape, bytes(data[begin:end]))
               for name, (dtype, shape, begin, end) in offsets.items()}
    return tensors, metadata


def read(path):
    """(tensors: dict name -> Entry, metadata: dict) of a safetensors file."""
    with open(path, "rb") as f:
        return parse(f.read(), path)


def values(entry):
    """The elements of an Entry as a flat Python list (little-endian); BF16
    as floats (each the float32 whose upper 16 bits it is, exactly)."""
    a = array.array(DTYPES[entry.dtype][0])
    a.frombytes(entry.data)
    if sys.byteorder != "little":
        a.byteswap()
    if entry.dtype == "BF16":
        return list(struct.unpack(f"<{len(a)}f",
                                  struct.pack(f"<{len(a)}I",
                                              *(v << 16 for v in a))))
    return a.tolist()


def serialize(tensors, metadata=None):
    """The bytes of a safetensors file of dict name -> Entry (names sorted,
    data section 8-byte aligned, dive's CRCs in the metadata)."""
    header, offsets, chunks, offset = {}, {}, [], 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        if dtype not in DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dtype!r}")
        if len(data) != numel(shape) * DTYPES[dtype][1]:
            raise ValueError(f"{name}: {len(data)} bytes for {dtype} {shape}")
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        offsets[name] = (dtype, list(shape), offset, offset + len(data))
        chunks.append(bytes(data))
        offset += len(data)
    data = b"".join(chunks)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()
            if str(k) != HEADER_CRC_KEY}
    meta[CRC_KEY] = str(zlib.crc32(data) & 0xFFFFFFFF)
    meta[HEADER_CRC_KEY] = _header_crc(offsets, meta)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def write(path, tensors, metadata=None):
    """Writes dict name -> Entry (or (dtype, shape, bytes)) to `path`
    atomically: through a new temporary file beside it, renamed over `path`
    only when that is absent or a regular file (never through a symlink)."""
    raw = serialize(tensors, metadata)
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: exists and is not a regular file")
    except FileNotFoundError:
        pass
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
