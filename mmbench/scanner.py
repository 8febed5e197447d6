"""A compiled scanner for the common form of a predictions line (numba).

Nearly every line of a predictions file looks like
``{"instance_id": "<id>", "predictions": ["<track_id>", ...]}``. :func:`read_lines` parses such
lines straight from the file's bytes, on all cores, and looks every id up in hash tables over
the raw id bytes (:class:`IdTable`), without creating a Python object per line or per id. It
accepts a strict subset of JSON: an object whose ``instance_id`` and ``predictions`` are
strings of printable ASCII without escapes, with any other key skipped whatever its value
(validated as JSON: strings as UTF-8 with their escapes, numbers, literals, nested arrays and
objects), a repeated key read as its last value (as ``json.loads`` does), whitespace anywhere
JSON allows it. Where JSON parsers may disagree (a lone surrogate, a number too large for a
double, nesting deeper than 60) it declines the line. :func:`take_lines` then records the lines in file
order and stops, before changing anything, at the first line outside that subset or with
anything wrong (an unknown or repeated id, an empty or too long ranking): the caller reads that
line on the exact path, which either accepts it or names the error precisely, and resumes after
it. So the scanner never decides that a line is wrong; it only takes the lines that are
certainly right.

The ids of a ranking are looked up together, in stages (hash all, load each one's first table
slot, then follow the probe sequences): the loads do not depend on one another, so the processor
overlaps them, where one lookup after another would wait on memory each time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit, prange

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0x165667B19E3779F9)
_EMPTY = np.uint64(0)  # a table slot's third word: 0 = empty, else the string's index + 1


@njit(cache=True, nogil=True)
def _mix(h1: np.uint64, h2: np.uint64, word: np.uint64) -> tuple[np.uint64, np.uint64]:
    h1 = (h1 ^ word) * _M2
    h2 = (h2 ^ word) * _M3
    return h1 ^ (h1 >> np.uint64(31)), h2 ^ (h2 >> np.uint64(29))


@njit(cache=True, nogil=True)
def _finish(h1: np.uint64, h2: np.uint64, length: int) -> tuple[np.uint64, np.uint64]:
    h1 ^= np.uint64(length)
    h2 ^= np.uint64(length) * _M1
    h1 = (h1 ^ (h1 >> np.uint64(29))) * _M1
    h2 = (h2 ^ (h2 >> np.uint64(32))) * _M2
    return h1 ^ (h1 >> np.uint64(32)), h2 ^ (h2 >> np.uint64(31))


@njit(cache=True, nogil=True)
def _hash(data: np.ndarray, start: int, end: int) -> tuple[np.uint64, np.uint64]:
    """Two independent 64-bit hashes of ``data[start:end]`` (stable; not Python's hash())."""
    h1, h2 = _M1, _M3
    word, shift = np.uint64(0), np.uint64(0)
    for q in range(start, end):
        word |= np.uint64(data[q]) << shift
        shift += np.uint64(8)
        if shift == np.uint64(64):
            h1, h2 = _mix(h1, h2, word)
            word, shift = np.uint64(0), np.uint64(0)
    if shift:
        h1, h2 = _mix(h1, h2, word)
    return _finish(h1, h2, end - start)


@njit(cache=True, nogil=True)
def _build(offsets: np.ndarray, data: np.ndarray, table: np.ndarray) -> int:
    """Insert every string of (offsets, data); return the index of a repeated one, else -1."""
    mask = table.shape[0] - 1
    for i in range(offsets.size - 1):
        h1, h2 = _hash(data, offsets[i], offsets[i + 1])
        s = np.int64(h1 & np.uint64(mask))
        while table[s, 2] != _EMPTY:
            if table[s, 0] == h1 and table[s, 1] == h2:
                return i
            s = (s + 1) & mask
        table[s, 0], table[s, 1], table[s, 2] = h1, h2, np.uint64(i + 1)
    return -1


@njit(cache=True, nogil=True)
def _find_many(table: np.ndarray, hashes: np.ndarray, n: int, out: np.ndarray) -> bool:
    """``out[k]`` = the index of the string whose hashes are ``hashes[k]``, or -1, for k < n;
    True if all were found."""
    mask = table.shape[0] - 1
    for k in range(n):  # independent loads of each id's first slot: the processor overlaps them
        out[k] = np.int64(table[np.int64(hashes[k, 0] & np.uint64(mask)), 2])
    found = True
    for k in range(n):  # the slots are in cache now: follow the probe sequences
        h1, h2 = hashes[k, 0], hashes[k, 1]
        s = np.int64(h1 & np.uint64(mask))
        while table[s, 2] != _EMPTY and not (table[s, 0] == h1 and table[s, 1] == h2):
            s = (s + 1) & mask
        out[k] = np.int64(table[s, 2]) - 1
        found &= out[k] >= 0
    return found


@njit(cache=True, nogil=True)
def _hash_all(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    hashes = np.empty((offsets.size - 1, 2), dtype=np.uint64)
    for i in range(offsets.size - 1):
        hashes[i, 0], hashes[i, 1] = _hash(data, offsets[i], offsets[i + 1])
    return hashes


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
    """An open-addressing hash table over the bytes of a column of distinct strings.

    A string is known by two independent 64-bit hashes of its bytes: ``table`` holds (hash 1,
    hash 2, index + 1, unused) per slot (32 bytes, so a slot never straddles two cache lines),
    at most half full. Two different strings share both hashes with a probability near 2^-128,
    far below the chance that two songs share a 64-bit track id in the first place.
    """

    def __init__(self, strings: pa.Array | pa.ChunkedArray):
        strings, offsets, data = _buffers(strings)
        self.size = len(strings)
        self.table = np.zeros((1 << max(4, (2 * max(self.size, 1) - 1).bit_length()), 4), dtype=np.uint64)
        repeated = _build(offsets, data, self.table)
        if repeated >= 0:
            raise ValueError(f"repeated id {strings[repeated].as_py()!r}")

    def __len__(self) -> int:
        return self.size

    def positions(self, strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The position of each string of a column in this one (int64, -1 where absent)."""
        strings, offsets, data = _buffers(strings)
        out = np.empty(len(strings), dtype=np.int64)
        _find_many(self.table, _hash_all(offsets, data), len(strings), out)
        return out

    def find(self, value: str) -> int:
        """The position of ``value`` in the column, or -1."""
        return int(self.positions(pa.array([value]))[0])


_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET, _NEWLINE = 123, 125, 91, 93, 10
_INSTANCE_ID = np.frombuffer(b"instance_id", dtype=np.uint8)
_PREDICTIONS = np.frombuffer(b"predictions", dtype=np.uint8)


@njit(cache=True, nogil=True)
def _skip_space(buf: np.ndarray, p: int) -> int:
    while buf[p] == 32 or buf[p] == 9 or buf[p] == 13:
        p += 1
    return p


@njit(cache=True, nogil=True)
def _string(buf: np.ndarray, p: int, hashes: np.ndarray, k: int) -> int:
    """``p`` is just after an opening quote: the position of the closing one, with the string's
    hashes in ``hashes[k]`` (by :func:`_hash`, as the tables' ids); -1 if it holds anything but
    printable ASCII (escapes, control or non-ASCII bytes)."""
    start = p
    while True:
        b = buf[p]
        if b == _QUOTE:
            break
        if b < 32 or b > 126 or b == _BACKSLASH:
            return -1
        p += 1
    hashes[k, 0], hashes[k, 1] = _hash(buf, start, p)
    return p


@njit(cache=True, nogil=True)
def _same(a: np.ndarray, a0: int, a1: int, b: np.ndarray) -> bool:
    if a1 - a0 != b.size:
        return False
    for k in range(b.size):  # noqa: SIM110 (numba compiles loops, not generator expressions)
        if a[a0 + k] != b[k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _continuation(buf: np.ndarray, p: int, low: int = 0x80, high: int = 0xBF) -> bool:
    return low <= buf[p] <= high


@njit(cache=True, nogil=True)
def _skip_string(buf: np.ndarray, p: int) -> tuple[int, bool]:
    """``p`` is just after an opening quote: (the position of the closing one, whether the
    string holds an escape), or (-1, False) unless it is a JSON string of valid UTF-8 without
    surrogates. Every line ends in a newline, which no string may hold, so reads stop there."""
    escaped = False
    while True:
        b = buf[p]
        if b == _QUOTE:
            return p, escaped
        if b < 32:
            return -1, False
        if b == _BACKSLASH:
            escaped = True
            e = buf[p + 1]
            if e == 117:  # \uXXXX; a surrogate half is declined (parsers differ on lone ones)
                value = 0
                for q in range(p + 2, p + 6):
                    d = buf[q]
                    if 48 <= d <= 57:
                        value = value * 16 + d - 48
                    elif 97 <= d <= 102 or 65 <= d <= 70:
                        value = value * 16 + (d | 32) - 87
                    else:
                        return -1, False
                if 0xD800 <= value <= 0xDFFF:
                    return -1, False
                p += 6
            elif e in (34, 92, 47, 98, 102, 110, 114, 116):  # " \ / b f n r t
                p += 2
            else:
                return -1, False
        elif b < 0x80:
            p += 1
        elif 0xC2 <= b <= 0xDF:
            if not _continuation(buf, p + 1):
                return -1, False
            p += 2
        elif 0xE0 <= b <= 0xEF:  # no overlong forms (E0 80-9F), no surrogates (ED A0-BF)
            low, high = (0xA0 if b == 0xE0 else 0x80), (0x9F if b == 0xED else 0xBF)
            if not (_continuation(buf, p + 1, low, high) and _continuation(buf, p + 2)):
                return -1, False
            p += 3
        elif 0xF0 <= b <= 0xF4:  # no overlong forms (F0 80-8F), nothing above U+10FFFF
            low, high = (0x90 if b == 0xF0 else 0x80), (0x8F if b == 0xF4 else 0xBF)
            if not (
                _continuation(buf, p + 1, low, high)
                and _continuation(buf, p + 2)
                and _continuation(buf, p + 3)
            ):
                return -1, False
            p += 4
        else:
            return -1, False


@njit(cache=True, nogil=True)
def _skip_digits(buf: np.ndarray, p: int) -> int:
    while 48 <= buf[p] <= 57:
        p += 1
    return p


@njit(cache=True, nogil=True)
def _skip_number(buf: np.ndarray, p: int) -> int:
    """The end of the JSON number at ``p``, or -1. Declines one that might not fit a double (over
    99 digits before the exponent, or an exponent of 3 digits), where parsers differ."""
    start = p
    if buf[p] == 45:  # -
        p += 1
    if buf[p] == 48:  # a leading 0 stands alone
        p += 1
    elif 49 <= buf[p] <= 57:
        p = _skip_digits(buf, p)
    else:
        return -1
    if buf[p] == 46:  # .
        if not 48 <= buf[p + 1] <= 57:
            return -1
        p = _skip_digits(buf, p + 1)
    if p - start > 100:
        return -1
    if buf[p] == 101 or buf[p] == 69:  # e E
        p += 1
        if buf[p] == 43 or buf[p] == 45:
            p += 1
        exponent = p
        p = _skip_digits(buf, p)
        if p == exponent or p - exponent > 2:
            return -1
    return p


_TRUE = np.frombuffer(b"true", dtype=np.uint8)
_FALSE = np.frombuffer(b"false", dtype=np.uint8)
_NULL = np.frombuffer(b"null", dtype=np.uint8)
_MAX_DEPTH = 60


@njit(cache=True, nogil=True)
def _skip_key(buf: np.ndarray, p: int) -> int:
    """At a member of an object: the position of its value (after the key and the colon), or -1."""
    if buf[p] != _QUOTE:
        return -1
    end, _ = _skip_string(buf, p + 1)
    if end < 0:
        return -1
    p = _skip_space(buf, end + 1)
    if buf[p] != _COLON:
        return -1
    return _skip_space(buf, p + 1)


@njit(cache=True, nogil=True)
def _skip_value(buf: np.ndarray, p: int) -> int:
    """The end of the JSON value at ``p`` (any kind, nested), or -1 if it is not valid JSON or
    lies outside what the scanner takes. Open arrays and objects are a stack of bits."""
    depth, objects = 0, np.uint64(0)  # bit k of objects: level k + 1 is an object
    while True:
        b = buf[p]  # a value starts here
        if b == _QUOTE:
            p, _ = _skip_string(buf, p + 1)
            if p < 0:
                return -1
            p += 1
        elif b in (_LBRACE, _LBRACKET):
            if depth == _MAX_DEPTH:
                return -1
            is_object = b == _LBRACE
            objects = (objects << np.uint64(1)) | np.uint64(is_object)
            depth += 1
            p = _skip_space(buf, p + 1)
            if buf[p] == (_RBRACE if is_object else _RBRACKET):
                p += 1
                depth -= 1
                objects >>= np.uint64(1)
            else:
                if is_object:
                    p = _skip_key(buf, p)
                    if p < 0:
                        return -1
                continue
        elif b == 45 or 48 <= b <= 57:
            p = _skip_number(buf, p)
            if p < 0:
                return -1
        elif _same(buf, p, p + 4, _TRUE) or _same(buf, p, p + 4, _NULL):
            p += 4
        elif _same(buf, p, p + 5, _FALSE):
            p += 5
        else:
            return -1
        while True:  # after a value: close what ends here, or go on to the next value
            if depth == 0:
                return p
            p = _skip_space(buf, p)
            in_object = (objects & np.uint64(1)) == np.uint64(1)
            if buf[p] == _COMMA:
                p = _skip_space(buf, p + 1)
                if in_object:
                    p = _skip_key(buf, p)
                    if p < 0:
                        return -1
                break
            elif buf[p] == (_RBRACE if in_object else _RBRACKET):
                p += 1
                depth -= 1
                objects >>= np.uint64(1)
            else:
                return -1


@njit(cache=True, nogil=True)
def _string_array(buf: np.ndarray, p: int, hashes: np.ndarray, max_predictions: int) -> tuple[int, int]:
    """Parse a non-empty array of at most ``max_predictions`` strings at ``p`` into
    ``hashes[1:n+1]``; return (n, the position after the ``]``), or (-1, p) for anything else."""
    if buf[p] != _LBRACKET:
        return -1, p
    p = _skip_space(buf, p + 1)
    n = 0
    while True:
        if buf[p] != _QUOTE or n == max_predictions:
            return -1, p  # also an empty ranking
        n += 1
        p = _string(buf, p + 1, hashes, n)
        if p < 0:
            return -1, p
        p = _skip_space(buf, p + 1)
        if buf[p] == _COMMA:
            p = _skip_space(buf, p + 1)
        elif buf[p] == _RBRACKET:
            return n, p + 1
        else:
            return -1, p


@njit(cache=True, nogil=True)
def _parse_line(buf: np.ndarray, p: int, hashes: np.ndarray, max_predictions: int) -> tuple[int, int]:
    """Parse the plain form of one line from ``p``: ``hashes[0]`` = the instance id's,
    ``hashes[1:n+1]`` = the predictions' (``hashes`` has ``max_predictions + 1`` rows); other
    keys are skipped, a repeated key counts with its last value. Return (n >= 1, the position
    after the line's newline), or (-1, p) for anything else."""
    line_start = p
    p = _skip_space(buf, p)
    if buf[p] != _LBRACE:
        return -1, line_start
    p = _skip_space(buf, p + 1)
    have_instance = False
    n = -1
    while True:
        if buf[p] != _QUOTE:
            return -1, line_start
        k0 = p + 1
        k1, escaped = _skip_string(buf, k0)
        if k1 < 0 or escaped:  # an escaped key could spell a known one
            return -1, line_start
        p = _skip_space(buf, k1 + 1)
        if buf[p] != _COLON:
            return -1, line_start
        p = _skip_space(buf, p + 1)
        if _same(buf, k0, k1, _INSTANCE_ID):
            if buf[p] != _QUOTE:
                return -1, line_start
            p = _string(buf, p + 1, hashes, 0)
            if p < 0:
                return -1, line_start
            have_instance = True
            p += 1
        elif _same(buf, k0, k1, _PREDICTIONS):
            n, p = _string_array(buf, p, hashes, max_predictions)
            if n < 0:
                return -1, line_start
        else:
            p = _skip_value(buf, p)
            if p < 0:
                return -1, line_start
        p = _skip_space(buf, p)
        if buf[p] == _COMMA:
            p = _skip_space(buf, p + 1)
        elif buf[p] == _RBRACE:
            break
        else:
            return -1, line_start
    p = _skip_space(buf, p + 1)
    if buf[p] != _NEWLINE or not have_instance or n < 1:
        return -1, line_start
    return n, p + 1


@njit(cache=True, nogil=True)
def line_starts(buf: np.ndarray) -> np.ndarray:
    """Where each line of ``buf`` (whole lines, each ending in a newline) starts, and its end."""
    n = 0
    for p in range(buf.size):
        n += buf[p] == _NEWLINE
    starts = np.empty(n + 1, dtype=np.int64)
    starts[0], k = 0, 1
    for p in range(buf.size):
        if buf[p] == _NEWLINE:
            starts[k] = p + 1
            k += 1
    return starts


@njit(cache=True, parallel=True)
def read_lines(
    buf: np.ndarray, starts: np.ndarray, max_predictions: int, instances: np.ndarray, tracks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Parse every line and look its ids up, on all cores: per line, the instance (-1 when the
    line is not of the plain form or holds an unknown id) and the ranking's track codes
    (``codes[i, 0]`` = their number). Changes nothing; :func:`take_lines` checks and records."""
    n_lines = starts.size - 1
    instance = np.full(n_lines, -1, dtype=np.int64)
    codes = np.zeros((n_lines, max_predictions + 1), dtype=np.int32)
    n_chunks = max(1, min(n_lines, 64))
    for c in prange(n_chunks):
        hashes = np.empty((max_predictions + 1, 2), dtype=np.uint64)
        found = np.empty(max_predictions + 1, dtype=np.int64)
        for i in range(c * n_lines // n_chunks, (c + 1) * n_lines // n_chunks):
            n, _ = _parse_line(buf, starts[i], hashes, max_predictions)
            if n < 0 or not _find_many(instances, hashes, 1, found):
                continue
            j = found[0]
            if not _find_many(tracks, hashes[1:], n, found):
                continue
            instance[i] = j
            codes[i, 0] = n
            codes[i, 1 : n + 1] = found[:n]
    return instance, codes


@njit(cache=True, nogil=True)
def take_lines(
    first: int,
    line: int,
    instance: np.ndarray,
    codes: np.ndarray,
    targets: np.ndarray,
    ranks: np.ndarray,
    line_of: np.ndarray,
    first_position: np.ndarray,
    top: np.ndarray,
) -> int:
    """Record the lines that :func:`read_lines` read, in order from index ``first`` (numbered
    from ``line``); return the index of the first line not taken (``instance.size`` when all
    were): one not of the plain form, an unknown id, an instance given before, a track given
    twice. For each line taken: ``ranks[i]`` = the target's 1-based position (left 0 when
    absent), ``line_of[i]`` = the line number, ``first_position`` lowered to each track's,
    ``top[i]`` = the codes of the ranking's first ``top.shape[1]`` tracks."""
    # A small set of the line's codes (at most half full, stamped with the line number so that
    # it never needs clearing) finds a track given twice; it stays in the fastest cache.
    set_size = 16
    while set_size < 2 * codes.shape[1]:
        set_size *= 2
    set_codes = np.empty(set_size, dtype=np.int64)
    set_line = np.full(set_size, -1, dtype=np.int64)
    for k in range(first, instance.size):
        i = instance[k]
        if i < 0 or line_of[i] != 0:
            return k
        n = codes[k, 0]
        for j in range(1, n + 1):
            code = codes[k, j]
            s = (code * 40503) & (set_size - 1)
            while set_line[s] == k:
                if set_codes[s] == code:
                    return k
                s = (s + 1) & (set_size - 1)
            set_codes[s], set_line[s] = code, k
        target = targets[i]
        for j in range(1, n + 1):
            code = codes[k, j]
            if code == target:
                ranks[i] = j
            if first_position[code] > j:
                first_position[code] = j
            if j <= top.shape[1]:
                top[i, j - 1] = code
        line_of[i] = line + k - first
    return instance.size
