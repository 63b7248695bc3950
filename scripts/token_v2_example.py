#!/usr/bin/env python3
"""Recompute the v2 worked example of docs/token.md from the spec alone.

An independent check of src/token.rs (whose unit test `worked_example_v2`
asserts the same values). Needs the `cryptography` package for AES-128:
    python3 -m venv /tmp/v && /tmp/v/bin/pip install cryptography
    /tmp/v/bin/python scripts/token_v2_example.py
"""
import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SECRET = bytes(range(32))  # key 7: 00 01 02 .. 1f
KID, DAY, SPLIT = 7, 2517, 9  # 2026-11-22
LINK_ID = 123456789
LINK_SECRET = bytes.fromhex("0123456789abcdef1357")


def digits(n, width):
    out = ""
    for _ in range(width):
        out = ALPHABET[n % 62] + out
        n //= 62
    assert n == 0
    return out


block = LINK_ID.to_bytes(6, "big") + LINK_SECRET
block_key = hmac.new(SECRET, b"linktrack token v2 block key", hashlib.sha256).digest()[:16]
enc = Cipher(algorithms.AES(block_key), modes.ECB()).encryptor()
cipher = enc.update(block) + enc.finalize()
random22 = digits(int.from_bytes(cipher, "big"), 22)[::-1]  # least-significant digit first
msg = b"2" + bytes([KID]) + DAY.to_bytes(2, "big") + cipher + bytes([SPLIT])
tag = hmac.new(SECRET, msg, hashlib.sha256).digest()
mac6 = digits(int.from_bytes(tag[:8], "big") % 62**6, 6)
payload = random22 + ALPHABET[KID] + mac6
token = payload[:SPLIT] + "-2" + digits(DAY, 3) + "-" + payload[SPLIT:]

print("block     ", block.hex())
print("block key ", block_key.hex())
print("cipher    ", cipher.hex())
print("random22  ", random22)
print("mac tag   ", tag[:8].hex(), "->", mac6)
print("token     ", token)
assert cipher.hex() == "5e63b11b49afee329bccd1adea1a2fe1"
assert token == "jwqbIh94p-20eb-in0FxsINxp6s27SY3VtH"
print("ok: matches docs/token.md and src/token.rs")
