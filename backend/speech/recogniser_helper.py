"""The phone recogniser's helper process (speech.recogniser starts it): 16-bit PCM requests on stdin, recognised phones on stdout.

Frames: request = u64 little-endian byte count + 16 kHz mono int16 PCM; reply = u32 byte count +
JSON {"phones": [[phone, start s, end s], ...]} or {"error": "..."}. EOF on stdin ends it.
"""
from __future__ import annotations

import json
import struct
import sys


def main() -> int:
    from .align import decoders, recognise

    src, dst = sys.stdin.buffer, sys.stdout.buffer
    pair = decoders()  # built while idle, so a request pays for recognition only
    while True:
        head = src.read(8)
        if len(head) < 8:
            return 0
        n = struct.unpack("<Q", head)[0]
        pcm = src.read(n)
        try:
            if len(pcm) != n or n % 2:
                raise ValueError(f"expected {n} bytes of 16-bit PCM, got {len(pcm)}")
            reply = {"phones": recognise(pcm, pair=pair)[1]}
        except Exception as e:  # one bad request must not end the helper
            reply = {"error": f"{type(e).__name__}: {e}"}
        body = json.dumps(reply).encode()
        dst.write(struct.pack("<I", len(body)) + body)
        dst.flush()
        pair = decoders()  # fresh for the next request (see decoders())


if __name__ == "__main__":
    raise SystemExit(main())
