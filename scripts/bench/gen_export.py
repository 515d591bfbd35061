#!/usr/bin/env python3
"""Writes a valid avvik export (NDJSON, hash-chained) of N DeviationReported records to
stdout, for benchmarks: `gen_export.py 1000000 > export.ndjson`."""
import hashlib
import json
import sys
import uuid
from datetime import datetime, timedelta, timezone

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
prev = "0" * 64
base = datetime(2026, 1, 1, tzinfo=timezone.utc)
out = sys.stdout.buffer
desc = "Ett mejl med personuppgifter skickades till fel mottagare inom socialtjänsten. " * 3
for seq in range(1, n + 1):
    year_seq = seq
    stream = str(uuid.UUID(int=(0x1234 << 64) + seq))
    rec = {
        "seq": seq,
        "id": str(uuid.UUID(int=(0x5678 << 64) + seq)),
        "stream": stream,
        "version": 1,
        "at": (base + timedelta(seconds=seq * 10)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "actor": "reporter:anonymous",
        "type": "DeviationReported",
        "schema": 1,
        "data": {
            "asset": None,
            "channel": "api",
            "description": desc,
            "discovered_at": "2026-01-01T00:00:00Z",
            "occurred_at": None,
            "personal_data": seq % 3 == 0,
            "reference": "AVV-2026-%04d" % year_seq,
            "reported_at": "2026-01-01T00:00:00Z",
            "reporter": None,
            "sector": "Socialtjänsten",
            "status_token_hash": hashlib.sha256(str(seq).encode()).hexdigest(),
            "title": "Felskickad e-post %d" % seq,
        },
        "prev": prev,
    }
    line = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
    out.write(line + b"\n")
    prev = hashlib.sha256(line).hexdigest()
