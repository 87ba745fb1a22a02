#!/usr/bin/env python3
"""An independent pcapng reader for the tests (standard library only).

Reads a pcapng file block by block, checks every block's framing (lengths, padding, byte
order, trailing length), and prints one JSON object per line:
  {"block": "shb", "userappl": ..., "os": ...}
  {"block": "idb", "id": N, "name": ..., "tsresol": N, "snaplen": N, "mac": "aa:..", "speed": N, "hardware": ...}
  {"block": "epb", "if": N, "ts_ns": N, "caplen": N, "origlen": N, "flags": N, "comment": ...}
  {"block": "isb", "if": N, "ts_ns": N, "start_ns": N, "end_ns": N, "ifrecv": N, "ifdrop": N}
Exits 1 with a message on stderr on any malformed block.
"""
import json
import struct
import sys


def fail(msg):
    sys.stderr.write("pcapng_dump: " + msg + "\n")
    sys.exit(1)


def options(data, endian):
    opts = []
    at = 0
    while at + 4 <= len(data):
        code, length = struct.unpack(endian + "HH", data[at:at + 4])
        at += 4
        if code == 0:
            return opts
        if at + length > len(data):
            fail("option %d overruns its block" % code)
        opts.append((code, data[at:at + length]))
        at += (length + 3) // 4 * 4
    return opts


def ts64(raw, endian):
    high, low = struct.unpack(endian + "II", raw)
    return high << 32 | low


def main(path):
    data = open(path, "rb").read()
    at = 0
    endian = "<"
    interfaces = []
    while at < len(data):
        if at + 12 > len(data):
            fail("truncated block header at %d" % at)
        btype = struct.unpack("<I", data[at:at + 4])[0]
        if btype == 0x0A0D0D0A:
            magic = data[at + 8:at + 12]
            endian = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        btype, blen = struct.unpack(endian + "II", data[at:at + 8])
        if blen % 4 or blen < 12 or at + blen > len(data):
            fail("bad block length %d at %d" % (blen, at))
        body = data[at + 8:at + blen - 4]
        if struct.unpack(endian + "I", data[at + blen - 4:at + blen])[0] != blen:
            fail("trailing length differs at %d" % at)
        if btype == 0x0A0D0D0A:
            opts = dict(options(body[16:], endian))
            print(json.dumps({"block": "shb",
                              "userappl": opts.get(4, b"").decode(),
                              "os": opts.get(3, b"").decode(),
                              "hardware": opts.get(2, b"").decode()}))
        elif btype == 1:
            linktype, _, snaplen = struct.unpack(endian + "HHI", body[:8])
            opts = dict(options(body[8:], endian))
            rec = {"block": "idb", "id": len(interfaces), "linktype": linktype,
                   "snaplen": snaplen,
                   "name": opts.get(2, b"").decode(),
                   "tsresol": opts[9][0] if 9 in opts else 6,
                   "hardware": opts.get(15, b"").decode()}
            if 6 in opts:
                rec["mac"] = ":".join("%02x" % b for b in opts[6])
            if 8 in opts:
                rec["speed"] = struct.unpack(endian + "Q", opts[8])[0]
            interfaces.append(rec)
            print(json.dumps(rec))
        elif btype == 6:
            ifid, tsh, tsl, caplen, origlen = struct.unpack(endian + "IIIII", body[:20])
            if ifid >= len(interfaces):
                fail("EPB names interface %d of %d" % (ifid, len(interfaces)))
            pad = (caplen + 3) // 4 * 4
            if 20 + pad > len(body):
                fail("EPB data overruns its block")
            opts = options(body[20 + pad:], endian)
            flags = [struct.unpack(endian + "I", v)[0] for c, v in opts if c == 2]
            comments = [v.decode() for c, v in opts if c == 1]
            print(json.dumps({"block": "epb", "if": ifid, "ts_ns": tsh << 32 | tsl,
                              "caplen": caplen, "origlen": origlen,
                              "flags": flags[0] if flags else None,
                              "comment": comments[0] if comments else None,
                              "data": body[20:20 + caplen].hex()}))
        elif btype == 5:
            ifid = struct.unpack(endian + "I", body[:4])[0]
            if ifid >= len(interfaces):
                fail("ISB names interface %d of %d" % (ifid, len(interfaces)))
            opts = dict(options(body[12:], endian))
            rec = {"block": "isb", "if": ifid, "ts_ns": ts64(body[4:12], endian)}
            for code, key in ((2, "start_ns"), (3, "end_ns")):
                if code in opts:
                    rec[key] = ts64(opts[code], endian)
            for code, key in ((4, "ifrecv"), (5, "ifdrop")):
                if code in opts:
                    rec[key] = struct.unpack(endian + "Q", opts[code])[0]
            print(json.dumps(rec))
        at += blen


if __name__ == "__main__":
    main(sys.argv[1])
