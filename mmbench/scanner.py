"""A compiled scanner for the common form of a predictions line (numba).

Nearly every line of a predictions file looks like
``{"instance_id": "<id>", "predictions": ["<track_id>", ...]}``. :func:`scan_lines` reads such
lines straight from the file's bytes, looks every id up in hash tables built over the raw id
bytes (:class:`IdTable`), checks the ranking and records the target's rank, without creating a
Python object per line or per id. It accepts a strict subset of JSON: exactly these two keys,
strings of printable ASCII without escapes, whitespace anywhere JSON allows it. At the first line
outside that subset, or with anything wrong (an unknown or repeated id, an empty or too long
ranking), it stops before changing anything for that line and returns its position: the caller
reads that line on the exact path, which either accepts it or names the error precisely, and
resumes the scanner after it. So the scanner never decides that a line is wrong; it only takes
the lines that are certainly right.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)


@njit(cache=True, nogil=True)
def _hash(data: np.ndarray, start: int, end: int) -> np.uint64:
    """A 64-bit hash of ``data[start:end]``, 8 bytes at a time (stable; not Python's hash())."""
    h = np.uint64(end - start) * _M1
    p = start
    while p < end:
        word = np.uint64(0)
        stop = min(p + 8, end)
        shift = np.uint64(0)
        for q in range(p, stop):
            word |= np.uint64(data[q]) << shift
            shift += np.uint64(8)
        h ^= word
        h *= _M2
        h ^= h >> np.uint64(31)
        p = stop
    h ^= h >> np.uint64(29)
    h *= _M1
    h ^= h >> np.uint64(32)
    return h


@njit(cache=True, nogil=True)
def _build(offsets: np.ndarray, data: np.ndarray, keys: np.ndarray, slots: np.ndarray) -> int:
    """Insert every string of (offsets, data); return the index of a repeated one, else -1."""
    mask = np.uint64(slots.size - 1)
    for i in range(offsets.size - 1):
        h = _hash(data, offsets[i], offsets[i + 1])
        s = h & mask
        while slots[s] >= 0:
            j = slots[s]
            if keys[s] == h and _same(data, offsets[j], offsets[j + 1], data, offsets[i], offsets[i + 1]):
                return i
            s = (s + np.uint64(1)) & mask
        keys[s] = h
        slots[s] = i
    return -1


@njit(cache=True, nogil=True)
def _same(a: np.ndarray, a0: int, a1: int, b: np.ndarray, b0: int, b1: int) -> bool:
    if a1 - a0 != b1 - b0:
        return False
    for k in range(a1 - a0):  # noqa: SIM110 (numba compiles loops, not generator expressions)
        if a[a0 + k] != b[b0 + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _find(
    keys: np.ndarray,
    slots: np.ndarray,
    offsets: np.ndarray,
    data: np.ndarray,
    buf: np.ndarray,
    s0: int,
    s1: int,
) -> int:
    """The index of ``buf[s0:s1]`` in the table, or -1."""
    h = _hash(buf, s0, s1)
    mask = np.uint64(slots.size - 1)
    s = h & mask
    while slots[s] >= 0:
        if keys[s] == h:
            j = slots[s]
            if _same(data, offsets[j], offsets[j + 1], buf, s0, s1):
                return j
        s = (s + np.uint64(1)) & mask
    return -1


def _buffers(strings: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A string column as (array kept alive, int64 offsets, uint8 bytes), without copying."""
    if isinstance(strings, pa.ChunkedArray):
        strings = pa.concat_arrays(strings.chunks) if strings.num_chunks else pa.array([], pa.string())
    strings = strings.cast(pa.large_string())
    if strings.null_count:
        raise ValueError("an id column may not hold nulls")
    _, offsets, data = strings.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return strings, offsets, data


class IdTable:
    """An open-addressing hash table over the bytes of a column of distinct strings."""

    def __init__(self, strings: pa.Array | pa.ChunkedArray):
        strings, self.offsets, self.data = _buffers(strings)
        size = 1 << max(4, int(2 * max(len(strings), 1) - 1).bit_length())  # load factor <= 1/2
        self.keys = np.zeros(size, dtype=np.uint64)
        self.slots = np.full(size, -1, dtype=np.int64)
        repeated = _build(self.offsets, self.data, self.keys, self.slots)
        if repeated >= 0:
            raise ValueError(f"repeated id {strings[repeated].as_py()!r}")
        self._strings = strings  # keeps the buffers alive

    def __len__(self) -> int:
        return self.offsets.size - 1

    def find(self, value: str) -> int:
        """The position of ``value`` in the column, or -1 (for tests and error messages)."""
        buf = np.frombuffer(value.encode(), dtype=np.uint8)
        return _find(self.keys, self.slots, self.offsets, self.data, buf, 0, buf.size)

    def positions(self, strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The position of each string of a column in this one (int64, -1 where absent)."""
        strings, offsets, data = _buffers(strings)
        return _find_all(self.keys, self.slots, self.offsets, self.data, offsets, data)


_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET, _NEWLINE = 123, 125, 91, 93, 10


@njit(cache=True, nogil=True)
def _skip_space(buf: np.ndarray, p: int) -> int:
    while buf[p] == 32 or buf[p] == 9 or buf[p] == 13:
        p += 1
    return p


@njit(cache=True, nogil=True)
def _string_end(buf: np.ndarray, p: int) -> int:
    """``p`` is just after an opening quote: the position of the closing one, or -1 if the
    string holds anything but printable ASCII (escapes, control or non-ASCII bytes)."""
    while True:
        b = buf[p]
        if b == _QUOTE:
            return p
        if b < 32 or b > 126 or b == _BACKSLASH:
            return -1
        p += 1


@njit(cache=True, nogil=True)
def _is_key(buf: np.ndarray, s0: int, s1: int, key: np.ndarray) -> bool:
    return _same(buf, s0, s1, key, 0, key.size)


_INSTANCE_ID = np.frombuffer(b"instance_id", dtype=np.uint8)
_PREDICTIONS = np.frombuffer(b"predictions", dtype=np.uint8)


@njit(cache=True, nogil=True)
def scan_lines(
    buf: np.ndarray,
    start: int,
    line: int,
    max_predictions: int,
    inst_keys: np.ndarray,
    inst_slots: np.ndarray,
    inst_offsets: np.ndarray,
    inst_data: np.ndarray,
    track_keys: np.ndarray,
    track_slots: np.ndarray,
    track_offsets: np.ndarray,
    track_data: np.ndarray,
    targets: np.ndarray,
    ranks: np.ndarray,
    line_of: np.ndarray,
    first_position: np.ndarray,
    seen: np.ndarray,
) -> tuple[int, int]:
    """Take whole lines of ``buf`` (each ending in a newline) from byte ``start``, numbered from
    ``line``; return the byte position and number of the first line not taken (``buf.size`` when
    all were). For each line taken: ``ranks[i]`` = the target's 1-based position (left 0 when
    absent), ``line_of[i]`` = the line number, ``first_position`` lowered to each track's
    position. ``seen`` (one int64 per track, below every line number) finds repeats."""
    codes = np.empty(max_predictions, dtype=np.int64)
    key_instance, key_predictions = _INSTANCE_ID, _PREDICTIONS
    p = start
    n_buf = buf.size
    while p < n_buf:
        line_start = p
        p = _skip_space(buf, p)
        if buf[p] != _LBRACE:
            return line_start, line
        p = _skip_space(buf, p + 1)
        instance = -2
        n = -1
        while True:
            if buf[p] != _QUOTE:
                return line_start, line
            k0 = p + 1
            k1 = _string_end(buf, k0)
            if k1 < 0:
                return line_start, line
            p = _skip_space(buf, k1 + 1)
            if buf[p] != _COLON:
                return line_start, line
            p = _skip_space(buf, p + 1)
            if _is_key(buf, k0, k1, key_instance) and instance == -2:
                if buf[p] != _QUOTE:
                    return line_start, line
                v1 = _string_end(buf, p + 1)
                if v1 < 0:
                    return line_start, line
                instance = _find(inst_keys, inst_slots, inst_offsets, inst_data, buf, p + 1, v1)
                if instance < 0 or line_of[instance] != 0:
                    return line_start, line
                p = v1 + 1
            elif _is_key(buf, k0, k1, key_predictions) and n == -1:
                if buf[p] != _LBRACKET:
                    return line_start, line
                p = _skip_space(buf, p + 1)
                n = 0
                if buf[p] == _RBRACKET:
                    return line_start, line  # an empty ranking
                while True:
                    if buf[p] != _QUOTE or n == max_predictions:
                        return line_start, line
                    v1 = _string_end(buf, p + 1)
                    if v1 < 0:
                        return line_start, line
                    code = _find(track_keys, track_slots, track_offsets, track_data, buf, p + 1, v1)
                    if code < 0 or seen[code] == line:
                        return line_start, line
                    seen[code] = line
                    codes[n] = code
                    n += 1
                    p = _skip_space(buf, v1 + 1)
                    if buf[p] == _COMMA:
                        p = _skip_space(buf, p + 1)
                    elif buf[p] == _RBRACKET:
                        break
                    else:
                        return line_start, line
                p += 1
            else:
                return line_start, line
            p = _skip_space(buf, p)
            if buf[p] == _COMMA:
                p = _skip_space(buf, p + 1)
            elif buf[p] == _RBRACE:
                break
            else:
                return line_start, line
        p = _skip_space(buf, p + 1)
        if buf[p] != _NEWLINE or instance < 0 or n < 1:
            return line_start, line
        target = targets[instance]
        for j in range(n):
            code = codes[j]
            if code == target:
                ranks[instance] = j + 1
            if first_position[code] > j + 1:
                first_position[code] = j + 1
        line_of[instance] = line
        p += 1
        line += 1
    return p, line


@njit(cache=True, nogil=True)
def _find_all(
    keys: np.ndarray,
    slots: np.ndarray,
    offsets: np.ndarray,
    data: np.ndarray,
    q_offsets: np.ndarray,
    q_data: np.ndarray,
) -> np.ndarray:
    out = np.empty(q_offsets.size - 1, dtype=np.int64)
    for i in range(out.size):
        out[i] = _find(keys, slots, offsets, data, q_data, q_offsets[i], q_offsets[i + 1])
    return out
