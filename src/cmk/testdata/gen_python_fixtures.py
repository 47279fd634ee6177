"""Regenerates python_sdk_v2.json: CSE v2 blobs written by the official azure-storage-blob SDK.

Run with the SDK installed (`pip install azure-storage-blob==12.31.1`):
    python gen_python_fixtures.py > python_sdk_v2.json
The content key is made deterministic (os.urandom patched) so Ferry's encryptor can be compared
byte for byte with the SDK's output; the KEK is a local A256KW key.
"""
import hashlib
import json

import azure.storage.blob
from azure.storage.blob import _encryption
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

KEK = bytes([0x11]) * 32
KID = "https://ferry-test.vault.azure.net/keys/kek/00112233445566778899aabbccddeeff"
CEK = bytes(range(32))


class LocalKek:
    def wrap_key(self, key):
        return aes_key_wrap(KEK, key)

    def get_key_wrap_algorithm(self):
        return "A256KW"

    def get_kid(self):
        return KID


def pattern(n):
    return bytes(((i * 31) >> 3) & 0xFF for i in range(n))


_encryption.os.urandom = lambda n: CEK[:n]
out = {"sdk": "azure-storage-blob " + azure.storage.blob.__version__, "kek_hex": KEK.hex(), "blobs": []}
for size in [0, 1, 1000, 4 * 1024 * 1024 + 5]:
    plain = pattern(size)
    metadata, body = _encryption.encrypt_blob(plain, LocalKek(), "2.0")
    entry = {"plaintext_len": size, "encryptiondata": metadata,
             "body_sha256": hashlib.sha256(body).hexdigest(), "body_len": len(body)}
    if len(body) <= 4096:
        entry["body_hex"] = body.hex()
    out["blobs"].append(entry)
print(json.dumps(out, indent=1))
