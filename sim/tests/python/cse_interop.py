"""Client-side encryption interop with Microsoft's Python storage SDK (azure-storage-blob).

Reads one JSON job on stdin and talks to the sandbox through the sim's https listener
(every *.sandbox.test name is pinned to 127.0.0.1:<port> here, like Ferry's `resolve`).

  {"op": "upload", "account_url", "container", "storage_token", "kek": {...}, "port", "ca",
   "out_dir", "blobs": [{"name", "size", "staged"}]}
      uploads random plaintexts with encryption_version="2.0" (single put, or staged blocks
      when "staged"), writes each plaintext to out_dir/<name>.
  {"op": "download", ..., "vault_token", "names": [...]}
      downloads and decrypts with the SDK, the key-encryption key unwrapping through the
      sim's Key Vault `unwrapkey`; writes out_dir/<name>, or out_dir/<name>.error.

kek: {"kid": versioned key id, "n": base64url, "e": base64url}. Wrapping is local (RSA-OAEP
with the key's public JWK); unwrapping calls the vault with the tenant's token.
"""

import base64
import json
import os
import socket
import ssl
import sys
import urllib.request

try:
    from azure.core.credentials import AccessToken
    from azure.storage.blob import BlobServiceClient
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
except ImportError as e:  # fail loudly with the install hint
    sys.stderr.write(
        f"missing Python SDK ({e}); install with: python3 -m venv .venv && "
        ".venv/bin/pip install azure-storage-blob azure-identity azure-keyvault-keys cryptography\n"
    )
    sys.exit(3)

JOB = json.load(sys.stdin)
PORT = int(JOB["port"])
_real_getaddrinfo = socket.getaddrinfo


def _pinned(host, port, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".sandbox.test"):
        return _real_getaddrinfo("127.0.0.1", PORT, *args, **kwargs)
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _pinned


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Token:
    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self.token, 4102444800)


class VaultKek:
    """A key-encryption key backed by a sim Key Vault RSA key."""

    def __init__(self, kek, vault_token=None):
        self.kid = kek["kid"]
        self.public = rsa.RSAPublicNumbers(
            int.from_bytes(b64url(kek["e"]), "big"), int.from_bytes(b64url(kek["n"]), "big")
        ).public_key()
        self.vault_token = vault_token

    def wrap_key(self, key):
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        return self.public.encrypt(key, oaep)

    def unwrap_key(self, key, algorithm):
        body = json.dumps(
            {"alg": algorithm, "value": base64.urlsafe_b64encode(key).decode().rstrip("=")}
        ).encode()
        req = urllib.request.Request(
            f"{self.kid}/unwrapkey?api-version=7.5",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.vault_token}",
                "Content-Type": "application/json",
            },
        )
        ctx = ssl.create_default_context(cafile=JOB["ca"])
        with urllib.request.urlopen(req, context=ctx) as r:
            return b64url(json.load(r)["value"])

    def get_key_wrap_algorithm(self):
        return "RSA-OAEP"

    def get_kid(self):
        return self.kid


def client():
    kek = VaultKek(JOB["kek"], JOB.get("vault_token"))
    service = BlobServiceClient(
        account_url=JOB["account_url"],
        credential=Token(JOB["storage_token"]),
        connection_verify=JOB["ca"],
        max_single_put_size=4 * 1024 * 1024,
        max_block_size=4 * 1024 * 1024,
    )
    service.require_encryption = True
    service.key_encryption_key = kek
    service.encryption_version = "2.0"
    return service.get_container_client(JOB["container"])


def main():
    container = client()
    out_dir = JOB["out_dir"]
    if JOB["op"] == "upload":
        for b in JOB["blobs"]:
            data = os.urandom(int(b["size"]))
            kwargs = {}
            if b.get("staged"):
                # larger than max_single_put_size: the SDK stages encrypted blocks
                kwargs["max_concurrency"] = 1
            container.upload_blob(b["name"], data, overwrite=True, **kwargs)
            with open(os.path.join(out_dir, b["name"]), "wb") as f:
                f.write(data)
    elif JOB["op"] == "download":
        for name in JOB["names"]:
            safe = name.replace("/", "_")
            try:
                data = container.download_blob(name).readall()
                with open(os.path.join(out_dir, safe), "wb") as f:
                    f.write(data)
            except Exception as e:  # reported to the Rust test, which fails with it
                with open(os.path.join(out_dir, safe + ".error"), "w") as f:
                    f.write(f"{type(e).__name__}: {e}")
    else:
        sys.stderr.write(f"unknown op {JOB['op']}\n")
        sys.exit(2)


main()
