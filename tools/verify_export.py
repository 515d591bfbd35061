#!/usr/bin/env python3
"""Check the hash chain of an avvik export without avvik.

An export (`avvik export`, or GET /api/v1/audit/events) is the stored bytes of every
record, one record per line:

    {"seq":..,"id":..,"stream":..,"version":..,"at":..,"actor":..,"type":..,"schema":..,"data":..,"prev":..}

`prev` is the lowercase hex SHA-256 of the previous line's bytes (64 zeros on seq 1).
This script checks, line by line and in constant memory, exactly what `avvik verify`
checks (events/src/verify.rs, ChainChecker):

  * every line is a valid record: JSON with the ten fields and their types;
  * seq runs 1, 2, 3, ... without gaps or reordering;
  * every prev is the SHA-256 of the previous line's raw bytes;
  * `at` never goes backwards;
  * with --expect-head SEQ:HASH, the export ends at that seq with that hash.

It hashes the raw bytes of each line (without its newline) and never re-serializes
JSON. It prints the same summary as `avvik verify`:

    ok: N records, head seq N hash H
    BROKEN: first bad seq N: reason

and, with --json, the same object as `avvik verify --json`
({ok, records, head_seq, head_hash, first_bad_seq?, reason?}).

Exit status: 0 the chain is intact, 1 it is broken, 2 the check could not run (bad
arguments, unreadable input).

Usage:
    python3 verify_export.py EXPORT.ndjson [--expect-head SEQ:HASH] [--json]
    avvik export | python3 verify_export.py -

Python 3.8 or later, standard library only.
"""

import argparse
import hashlib
import json
import math
import sys

GENESIS_HASH = "0" * 64
FIELDS = ("seq", "id", "stream", "version", "at", "actor", "type", "schema", "data", "prev")
_FIELD_SET = frozenset(FIELDS)
U16_MAX = 2**16 - 1
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I32_MAX = 2**31 - 1
I32_MIN = -(2**31)
# avvik's JSON reader (serde_json) refuses more than 127 nested arrays/objects in the
# parts of a record it reads (the record itself counts as one).
MAX_DEPTH = 127


class InvalidRecord(ValueError):
    """A line that avvik would not accept as a record."""


# --------------------------------------------------------------------------------------
# The parts of a record that are more than "a JSON string": the times and the UUIDs.
# These follow the parsers avvik uses (chrono's RFC 3339, the uuid crate).


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (year 0 included)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y, m):
    if m == 2:
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        return 29 if leap else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _digit(b):
    return 48 <= b <= 57


def parse_at(s):
    """An RFC 3339 time as avvik reads it: a key (UTC seconds, nanoseconds) that orders
    the same way. Accepts what chrono's parse_from_rfc3339 accepts: 'T', 't' or ' '
    between date and time, any number of fraction digits (nanoseconds kept), second 60
    (a leap second), 'Z', 'z' or +HH:MM / -HH:MM / U+2212 HH:MM with |offset| < 24h."""
    b = s.encode("utf-8")
    if len(b) < 19:
        raise InvalidRecord("at: too short for an RFC 3339 time")
    for i in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18):
        if not _digit(b[i]):
            raise InvalidRecord("at: not an RFC 3339 time")
    if b[4] != 0x2D or b[7] != 0x2D or b[13] != 0x3A or b[16] != 0x3A:
        raise InvalidRecord("at: not an RFC 3339 time")
    if b[10] not in b"tT ":
        raise InvalidRecord("at: not an RFC 3339 time")
    num = lambda i, n: int(b[i : i + n].decode("ascii"))  # noqa: E731
    year, month, day = num(0, 4), num(5, 2), num(8, 2)
    hour, minute, sec = num(11, 2), num(14, 2), num(17, 2)
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        raise InvalidRecord("at: no such date")
    nanos = 0
    if sec == 60:  # a leap second: chrono keeps it as second 59 plus one second of fraction
        sec, nanos = 59, 1_000_000_000
    rest = b[19:]
    if rest[:1] == b".":
        i = 1
        while i < len(rest) and _digit(rest[i]):
            i += 1
        digits = rest[1:i]
        if not digits:
            raise InvalidRecord("at: a '.' without fraction digits")
        nanos += int(digits[:9].decode("ascii").ljust(9, "0"))
        rest = rest[i:]
    if hour >= 24 or minute >= 60 or sec >= 60:
        raise InvalidRecord("at: no such time of day")
    # The offset.
    if rest[:1] in (b"Z", b"z"):
        offset, rest = 0, rest[1:]
    else:
        if rest[:1] == b"+":
            sign, rest = 1, rest[1:]
        elif rest[:1] == b"-":
            sign, rest = -1, rest[1:]
        elif rest[:3] == "\u2212".encode("utf-8"):
            sign, rest = -1, rest[3:]
        else:
            raise InvalidRecord("at: no time zone offset")
        if len(rest) < 5 or not (_digit(rest[0]) and _digit(rest[1])) or rest[2] != 0x3A:
            raise InvalidRecord("at: bad time zone offset")
        if not (48 <= rest[3] <= 53 and _digit(rest[4])):
            raise InvalidRecord("at: bad time zone offset")
        oh, om = int(rest[0:2].decode("ascii")), int(rest[3:5].decode("ascii"))
        if oh > 23:
            raise InvalidRecord("at: time zone offset out of range")
        offset, rest = sign * (oh * 3600 + om * 60), rest[5:]
    if rest:
        raise InvalidRecord("at: trailing characters after the time")
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec
    return (secs - offset, nanos)


_HEX = frozenset(b"0123456789abcdefABCDEF")


def check_uuid(s):
    """A UUID as the uuid crate parses it: hyphenated, simple (32 hex digits), braced
    {..} or urn:uuid:.. (any case)."""
    b = s.encode("utf-8")
    if len(b) == 32:
        ok = all(c in _HEX for c in b)
    else:
        if len(b) == 38 and b[0] == 0x7B and b[-1] == 0x7D:
            b = b[1:-1]
        elif len(b) == 45 and b[:9].lower() == b"urn:uuid:":
            b = b[9:]
        ok = (
            len(b) == 36
            and b[8] == b[13] == b[18] == b[23] == 0x2D
            and all(c in _HEX for i, c in enumerate(b) if i not in (8, 13, 18, 23))
        )
    if not ok:
        raise InvalidRecord("not a UUID: %r" % s)


# --------------------------------------------------------------------------------------
# Numbers: avvik's JSON reader turns a number in `data` into a 64-bit float and refuses
# it when that overflows. This repeats its arithmetic exactly (serde_json without the
# float_roundtrip feature), so a number at the very edge of the range gets the same
# verdict.

_POW10 = [float("1e%d" % i) for i in range(309)]


def _f64_in_range(significand, exponent):
    f = float(significand)
    while True:
        a = abs(exponent)
        if a < len(_POW10):
            if exponent >= 0:
                f *= _POW10[a]
                return not math.isinf(f)
            return True
        if f == 0.0:
            return True
        if exponent >= 0:
            return False
        f /= 1e308
        exponent += 308


def number_in_range(text):
    """True when a JSON number (valid grammar) is one avvik's reader accepts as a value."""
    i = 1 if text[0] == "-" else 0
    n = len(text)
    sig = int(text[i])
    i += 1
    exponent = 0
    long_integer = False
    if sig != 0:
        while i < n and text[i].isdigit():
            d = int(text[i])
            if sig * 10 + d > U64_MAX:
                long_integer = True
                break
            sig = sig * 10 + d
            i += 1
    if long_integer:  # further integer digits are dropped, each one a power of ten
        while i < n and text[i].isdigit():
            exponent += 1
            i += 1
    if i < n and text[i] == ".":
        i += 1
        while i < n and text[i].isdigit():
            d = int(text[i])
            if sig * 10 + d > U64_MAX:  # further fraction digits are dropped
                while i < n and text[i].isdigit():
                    i += 1
                break
            sig = sig * 10 + d
            exponent -= 1
            i += 1
    elif i >= n and not long_integer:
        return True  # a plain integer that fits 64 bits
    if i < n and text[i] in "eE":
        i += 1
        positive = True
        if text[i] in "+-":
            positive = text[i] == "+"
            i += 1
        e = int(text[i])
        i += 1
        while i < n:
            d = int(text[i])
            i += 1
            if e * 10 + d > I32_MAX:
                return sig == 0 or not positive
            e = e * 10 + d
        exponent = exponent + e if positive else exponent - e
        exponent = max(I32_MIN, min(I32_MAX, exponent))
    return _f64_in_range(sig, exponent)


# --------------------------------------------------------------------------------------
# Reading one line as a record. The fast path uses Python's json module with hooks that
# keep everything avvik would look at; when it does not accept a line, the exact
# byte-level reader below decides (it repeats serde_json's rules, including where it is
# more lenient than Python, e.g. in the values of fields avvik ignores).


class _Obj:
    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


class _Num:
    __slots__ = ("text", "integer")

    def __init__(self, text, integer):
        self.text = text
        self.integer = integer


def _no_constants(name):
    raise ValueError("%s is not JSON" % name)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Obj,
    parse_int=lambda s: _Num(s, True),
    parse_float=lambda s: _Num(s, False),
    parse_constant=_no_constants,
)


def _is_text(v):
    """A JSON string avvik accepts: no lone UTF-16 surrogates."""
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _value_ok(v, level):
    """`data`: any JSON value, nested at most MAX_DEPTH deep in all, numbers in range,
    strings without lone surrogates."""
    if isinstance(v, _Obj):
        if level + 1 > MAX_DEPTH:
            return False
        return all(_is_text(k) and _value_ok(x, level + 1) for k, x in v.pairs)
    if isinstance(v, list):
        if level + 1 > MAX_DEPTH:
            return False
        return all(_value_ok(x, level + 1) for x in v)
    if isinstance(v, _Num):
        return number_in_range(v.text)
    if isinstance(v, str):
        return _is_text(v)
    return v is None or v is True or v is False


def _uint(v, top):
    if not (isinstance(v, _Num) and v.integer) or v.text.startswith("-") or len(v.text) > 20:
        return None
    n = int(v.text)
    return n if n <= top else None


def _fast(line):
    """(seq, at key, prev) when Python's json reads the line as a good record; None
    when the exact reader must decide."""
    try:
        top = _DECODER.decode(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if isinstance(top, _Obj):
        vals = {}
        for k, v in top.pairs:
            if k in _FIELD_SET:
                if k in vals:
                    return None  # a field given twice
                vals[k] = v
            elif not _is_text(k):
                return None
        if len(vals) != len(FIELDS):
            return None
    elif isinstance(top, list) and len(top) == len(FIELDS):
        # serde also reads a struct from an array of its fields in order.
        vals = dict(zip(FIELDS, top))
    else:
        return None
    seq = _uint(vals["seq"], U64_MAX)
    if seq is None or _uint(vals["version"], U32_MAX) is None:
        return None
    if _uint(vals["schema"], U16_MAX) is None:
        return None
    for f in ("id", "stream", "at", "actor", "type", "prev"):
        if not _is_text(vals[f]):
            return None
    if not _value_ok(vals["data"], 1):
        return None
    try:
        check_uuid(vals["id"])
        check_uuid(vals["stream"])
        at = parse_at(vals["at"])
    except InvalidRecord:
        return None
    return seq, at, vals["prev"]


_WS = b" \t\n\r"
_SIMPLE_ESCAPES = {
    0x22: "\"", 0x5C: "\\", 0x2F: "/", 0x62: "\b", 0x66: "\f", 0x6E: "\n", 0x72: "\r", 0x74: "\t",
}


class _Reader:
    """The exact reader: serde_json's rules for `RecordedEvent` on raw bytes."""

    def __init__(self, b):
        self.b = b
        self.i = 0
        self.depth = 0

    def fail(self, what):
        raise InvalidRecord("%s at column %d" % (what, self.i + 1))

    def peek(self):
        """Skips whitespace; the next byte or None at the end."""
        b, i = self.b, self.i
        while i < len(b) and b[i] in _WS:
            i += 1
        self.i = i
        return b[i] if i < len(b) else None

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail("nested too deep")

    # strings ----------------------------------------------------------------------

    def _hex4(self):
        h = self.b[self.i : self.i + 4]
        if len(h) < 4 or not all(c in _HEX for c in h):
            self.fail("invalid \\u escape")
        self.i += 4
        return int(h.decode("ascii"), 16)

    def string(self, validate=True):
        """After the opening quote. Returns the text (validate=True), or skips it the way
        serde skips an ignored value: escapes and control characters are checked, UTF-8
        and surrogate pairs are not."""
        b = self.b
        out = []
        start = self.i
        while True:
            i = self.i
            while i < len(b) and b[i] != 0x22 and b[i] != 0x5C and b[i] >= 0x20:
                i += 1
            if i >= len(b):
                self.i = i
                self.fail("end of line inside a string")
            if validate:
                try:
                    out.append(b[start:i].decode("utf-8"))
                except UnicodeDecodeError:
                    self.i = i
                    self.fail("invalid UTF-8 in a string")
            c = b[i]
            self.i = i + 1
            if c == 0x22:
                return "".join(out) if validate else None
            if c < 0x20:
                self.fail("control character in a string")
            # an escape
            e = b[self.i] if self.i < len(b) else None
            self.i += 1
            if e in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[e])
            elif e == 0x75:  # \u
                n = self._hex4()
                if validate:
                    if 0xDC00 <= n <= 0xDFFF:
                        self.fail("lone surrogate in a \\u escape")
                    if 0xD800 <= n <= 0xDBFF:
                        if b[self.i : self.i + 2] != b"\\u":
                            self.fail("lone surrogate in a \\u escape")
                        self.i += 2
                        n2 = self._hex4()
                        if not 0xDC00 <= n2 <= 0xDFFF:
                            self.fail("lone surrogate in a \\u escape")
                        n = 0x10000 + ((n - 0xD800) << 10) + (n2 - 0xDC00)
                    out.append(chr(n))
            else:
                self.fail("invalid escape")
            start = self.i

    def text(self):
        if self.peek() != 0x22:
            self.fail("expected a string")
        self.i += 1
        return self.string()

    # numbers ----------------------------------------------------------------------

    def number(self):
        """A JSON number's text (grammar checked), starting at the current byte."""
        b, start = self.b, self.i
        i = start
        if i < len(b) and b[i] == 0x2D:
            i += 1
        if i < len(b) and b[i] == 0x30:
            i += 1
            if i < len(b) and _digit(b[i]):
                self.i = i
                self.fail("invalid number")
        elif i < len(b) and 0x31 <= b[i] <= 0x39:
            while i < len(b) and _digit(b[i]):
                i += 1
        else:
            self.i = i
            self.fail("invalid number")
        if i < len(b) and b[i] == 0x2E:
            i += 1
            j = i
            while i < len(b) and _digit(b[i]):
                i += 1
            if i == j:
                self.i = i
                self.fail("invalid number")
        if i < len(b) and b[i] in b"eE":
            i += 1
            if i < len(b) and b[i] in b"+-":
                i += 1
            j = i
            while i < len(b) and _digit(b[i]):
                i += 1
            if i == j:
                self.i = i
                self.fail("invalid number")
        self.i = i
        return b[start:i].decode("ascii")

    def unsigned(self, top):
        c = self.peek()
        if c is None or not (c == 0x2D or _digit(c)):
            self.fail("expected an unsigned integer")
        t = self.number()
        if t.startswith("-") or not t.isdigit() or len(t) > 20 or int(t) > top:
            self.fail("expected an integer from 0 to %d" % top)
        return int(t)

    # values -----------------------------------------------------------------------

    def literal(self, word):
        if self.b[self.i : self.i + len(word)] != word:
            self.fail("expected a value")
        self.i += len(word)

    def value(self):
        """Any JSON value, checked as avvik reads `data`."""
        c = self.peek()
        if c == 0x22:
            self.i += 1
            self.string()
        elif c == 0x2D or (c is not None and _digit(c)):
            t = self.number()
            if not number_in_range(t):
                self.fail("number out of range")
        elif c == 0x6E:
            self.literal(b"null")
        elif c == 0x74:
            self.literal(b"true")
        elif c == 0x66:
            self.literal(b"false")
        elif c == 0x5B:
            self.enter()
            self.i += 1
            self.items(self.value, 0x5D)
            self.depth -= 1
        elif c == 0x7B:
            self.enter()
            self.i += 1
            self.members(lambda key: self.value(), 0x7D)
            self.depth -= 1
        else:
            self.fail("expected a value")

    def items(self, item, close):
        """Array elements after '[' up to and including ']'."""
        first = True
        while True:
            c = self.peek()
            if c == close:
                self.i += 1
                return
            if not first:
                if c != 0x2C:
                    self.fail("expected ',' or ']'")
                self.i += 1
                if self.peek() == close:
                    self.fail("trailing comma")
            first = False
            item()

    def members(self, member, close=0x7D):
        """Object members after '{' up to and including '}'; member(key) reads the value."""
        first = True
        while True:
            c = self.peek()
            if c == close:
                self.i += 1
                return
            if not first:
                if c != 0x2C:
                    self.fail("expected ',' or '}'")
                self.i += 1
                c = self.peek()
            first = False
            if c == close:
                self.fail("trailing comma")
            if c != 0x22:
                self.fail("expected a key")
            self.i += 1
            key = self.string()
            if self.peek() != 0x3A:
                self.fail("expected ':'")
            self.i += 1
            member(key)

    def ignored(self):
        """A value avvik skips (a field it does not know): grammar only, without the depth,
        UTF-8, surrogate and range checks (serde's ignore_value)."""
        stack = []  # open brackets of the containers around the current position
        while True:
            c = self.peek()
            if c == 0x22:
                self.i += 1
                self.string(validate=False)
            elif c == 0x2D or (c is not None and _digit(c)):
                self.number()
            elif c == 0x6E:
                self.literal(b"null")
            elif c == 0x74:
                self.literal(b"true")
            elif c == 0x66:
                self.literal(b"false")
            elif c in (0x5B, 0x7B):
                self.i += 1
                if self.peek() == c + 2:  # "[]" or "{}"
                    self.i += 1
                else:
                    stack.append(c)
                    if c == 0x7B:
                        self._key_colon()
                    continue
            else:
                self.fail("expected a value")
            # A value is complete: close what ends here, then on to the next element.
            while True:
                if not stack:
                    return
                c = self.peek()
                if c == stack[-1] + 2:
                    self.i += 1
                    stack.pop()
                    continue
                if c != 0x2C:
                    self.fail("expected ',' or a closing bracket")
                self.i += 1
                if stack[-1] == 0x7B:
                    self._key_colon()
                break

    def _key_colon(self):
        if self.peek() != 0x22:
            self.fail("expected a key")
        self.i += 1
        self.string(validate=False)
        if self.peek() != 0x3A:
            self.fail("expected ':'")
        self.i += 1

    # the record -------------------------------------------------------------------

    def field(self, name, vals):
        if name == "seq":
            vals[name] = self.unsigned(U64_MAX)
        elif name == "version":
            vals[name] = self.unsigned(U32_MAX)
        elif name == "schema":
            vals[name] = self.unsigned(U16_MAX)
        elif name == "data":
            self.value()
            vals[name] = None
        else:
            s = self.text()
            if name in ("id", "stream"):
                check_uuid(s)
            elif name == "at":
                s = parse_at(s)
            vals[name] = s

    def record(self):
        vals = {}
        c = self.peek()
        if c == 0x7B:
            self.enter()
            self.i += 1

            def member(key):
                if key in _FIELD_SET:
                    if key in vals:
                        self.fail("duplicate field `%s`" % key)
                    self.field(key, vals)
                else:
                    self.ignored()

            self.members(member)
            for f in FIELDS:
                if f not in vals:
                    raise InvalidRecord("missing field `%s`" % f)
        elif c == 0x5B:
            self.enter()
            self.i += 1
            for n, f in enumerate(FIELDS):
                c = self.peek()
                if c == 0x5D:
                    self.fail("an array of %d fields, not %d" % (n, len(FIELDS)))
                if n:
                    if c != 0x2C:
                        self.fail("expected ',' or ']'")
                    self.i += 1
                    if self.peek() == 0x5D:
                        self.fail("trailing comma")
                self.field(f, vals)
            if self.peek() != 0x5D:
                self.fail("more than %d fields" % len(FIELDS))
            self.i += 1
        else:
            self.fail("expected a JSON object")
        if self.peek() is not None:
            self.fail("trailing characters")
        return vals["seq"], vals["at"], vals["prev"]


def parse_record(line):
    """(seq, at key, prev) of one line, or InvalidRecord."""
    rec = _fast(line)
    if rec is not None:
        return rec
    return _Reader(line).record()


# --------------------------------------------------------------------------------------
# The chain: the same steps, reasons and numbering as avvik's ChainChecker.


class ChainChecker:
    def __init__(self):
        self.next_seq = 1
        self.prev_hash = GENESIS_HASH
        self.last_at = None
        self.bad = None  # (seq, reason)

    def check(self, line):
        """Checks the next line (without its newline). False once the chain is broken."""
        if self.bad is not None:
            return False
        expected = self.next_seq
        try:
            seq, at, prev = parse_record(line)
        except InvalidRecord as e:
            self.bad = (expected, "record %d is not a valid record: %s" % (expected, e))
            return False
        if seq != expected:
            if seq > expected:
                reason = "record %d is missing (found seq %d in its place)" % (expected, seq)
            else:
                reason = "records out of order: found seq %d where %d belongs" % (seq, expected)
            self.bad = (expected, reason)
            return False
        if prev != self.prev_hash:
            if expected == 1:
                self.bad = (1, "record 1 does not start the chain (prev is not 64 zeros)")
            else:
                self.bad = (
                    expected - 1,
                    "the stored bytes of record %d do not match the hash in record %d's prev"
                    % (expected - 1, expected),
                )
            return False
        if self.last_at is not None and at < self.last_at:
            self.bad = (expected, "record %d is dated before record %d" % (expected, expected - 1))
            return False
        self.prev_hash = hashlib.sha256(line).hexdigest()
        self.last_at = at
        self.next_seq += 1
        return True

    def finish(self, head=None):
        last = self.next_seq - 1
        if self.bad is None and head is not None:
            head_seq, head_hash = head
            if head_seq > last:
                self.bad = (
                    last + 1,
                    "record %d is missing (the head says the log ends at %d)" % (last + 1, head_seq),
                )
            elif head_seq < last:
                self.bad = (
                    head_seq + 1,
                    "records after the head (%d) were added outside the store" % head_seq,
                )
            elif head_hash != self.prev_hash:
                self.bad = (last, "the stored bytes of record %d do not match the head hash" % last)
        if self.bad is None:
            return {"ok": True, "records": last, "head_seq": last, "head_hash": self.prev_hash}
        seq, reason = self.bad
        good = max(seq - 1, 0)
        return {
            "ok": False,
            "records": good,
            "head_seq": good,
            "head_hash": "",
            "first_bad_seq": seq,
            "reason": reason,
        }


def verify_stream(stream, head=None):
    """Walks an export read from a binary stream, one line at a time."""
    checker = ChainChecker()
    for line in stream:
        if line.endswith(b"\n"):
            line = line[:-1]
        if not line:
            continue
        if not checker.check(line):
            break
    return checker.finish(head)


def parse_head(s):
    """SEQ:HASH, as `avvik verify --expect-head` reads it."""
    seq, sep, hash_ = s.partition(":")
    if not sep:
        raise ValueError("--expect-head must be SEQ:HASH")
    digits = seq[1:] if seq.startswith("+") else seq
    if not digits or not all("0" <= c <= "9" for c in digits) or int(digits) > U64_MAX:
        raise ValueError("--expect-head: SEQ must be a number")
    if len(hash_) != 64 or not all(c in "0123456789abcdefABCDEF" for c in hash_):
        raise ValueError("--expect-head: HASH must be 64 hex digits")
    return int(digits), hash_.lower()


def summary(report):
    if report["ok"]:
        return "ok: %d records, head seq %d hash %s" % (
            report["records"],
            report["head_seq"],
            report["head_hash"],
        )
    return "BROKEN: first bad seq %d: %s" % (report["first_bad_seq"], report["reason"])


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Check the hash chain of an avvik export (NDJSON) without avvik.",
        epilog="Exit status: 0 intact, 1 broken, 2 the check could not run.",
    )
    p.add_argument("export", help='the export file, or "-" for standard input')
    p.add_argument(
        "--expect-head",
        metavar="SEQ:HASH",
        help="the head the export must end with (e.g. from an annual report)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    head = None
    if args.expect_head is not None:
        try:
            head = parse_head(args.expect_head)
        except ValueError as e:
            p.error(str(e))
    try:
        if args.export == "-":
            report = verify_stream(sys.stdin.buffer, head)
        else:
            with open(args.export, "rb") as f:
                report = verify_stream(f, head)
    except OSError as e:
        print("error: cannot read %s: %s" % (args.export, e), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, separators=(",", ":"), ensure_ascii=False))
    else:
        print(summary(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
