"""Praval's per-message design through PyNaCl (Debian's python3-nacl): a NaCl Box (X25519 + XSalsa20-Poly1305)
and an Ed25519 signature over the box, for every message; opening verifies, then decrypts.

Run: /usr/bin/python3 bench/pynacl_anchor.py [size=1024] [iterations=5000]
Prints JSON: microseconds per seal and per open (the minimum of 3 repeats).
"""
import json
import sys
import time

from nacl.public import Box, PrivateKey
from nacl.signing import SigningKey

size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000

alice, bob = PrivateKey.generate(), PrivateKey.generate()
signer = SigningKey.generate()
verifier = signer.verify_key
to_bob = Box(alice, bob.public_key)
from_alice = Box(bob, alice.public_key)
message = bytes(size)


def seal():
    return signer.sign(to_bob.encrypt(message))


def open_(signed):
    return from_alice.decrypt(verifier.verify(signed))


signed = seal()
assert open_(signed) == message


def timed(f, *args):
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            f(*args)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


print(json.dumps({"size": size, "seal_us": timed(seal), "open_us": timed(open_, signed)}))
