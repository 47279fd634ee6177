"""ferry-sim's Key Vault checked with Microsoft's azure-keyvault-keys (KeyClient, CryptographyClient).

Run by sim/tests/keyvault_python.rs, which starts the sim, provisions a vault and a Managed HSM and
passes URLs and admin-minted access tokens in environment variables (VAULT_URL, HSM_URL, KEY_NAME,
VAULT_TOKEN, HSM_TOKEN, DENIED_TOKEN). REQUESTS_CA_BUNDLE points at the sandbox CA. Every
*.sandbox.test name resolves to 127.0.0.1 through a patched socket.getaddrinfo. Prints one
"ok <check>" line per passed check; exits 1 on the first failure. Never prints tokens.
"""

import os
import socket
import sys
import time

_real_getaddrinfo = socket.getaddrinfo


SIM_PORT = int(os.environ["SIM_PORT"])


def _sandbox_getaddrinfo(host, port, *args, **kwargs):
    # Vault URLs carry no port, as in Azure (the SDK's challenge check compares host:port with the
    # challenge resource), so https's default port is pinned to the sim's port here.
    if isinstance(host, str) and (host == "sandbox.test" or host.endswith(".sandbox.test")):
        host = "127.0.0.1"
        if port in (443, "443", "https"):
            port = SIM_PORT
    elif isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"{host} is not a sandbox host; the test refuses to resolve it")
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _sandbox_getaddrinfo

from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: E402
from azure.keyvault.keys import KeyClient  # noqa: E402
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm  # noqa: E402

ENV = os.environ


class StaticCredential:
    """Hands out one pre-minted token and records the scopes the SDK asked for."""

    def __init__(self, token):
        self._token = token
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        self.scopes.append(scopes)
        return AccessToken(self._token, int(time.time()) + 3000)


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok {name}")


def inner_code(error):
    try:
        return error.response.json()["error"].get("innererror", {}).get("code")
    except Exception as e:  # noqa: BLE001
        return f"unparsable error body ({e})"


def expect_http_error(name, call, status, code, inner):
    try:
        call()
    except ResourceNotFoundError as e:
        check(name, status == 404 and e.error is not None and e.error.code == code, f"{e.status_code} {e.error and e.error.code}")
        return
    except HttpResponseError as e:
        got = (e.status_code, e.error.code if e.error else None, inner_code(e))
        check(name, got == (status, code, inner), got)
        return
    check(name, False, "no error")


def vault_checks():
    cred = StaticCredential(ENV["VAULT_TOKEN"])
    client = KeyClient(ENV["VAULT_URL"], cred)
    name = ENV["KEY_NAME"]
    key = client.get_key(name)
    check("get_key through the challenge", key.key_type == "RSA" and key.properties.enabled, key.key_type)
    check("the sdk asked for the challenge's scope", cred.scopes[0] == ("https://vault.sandbox.test/.default",), cred.scopes)

    v1 = client.create_rsa_key("py-key", size=2048)
    v2 = client.create_rsa_key("py-key", size=2048)
    check("create_rsa_key makes new versions", v1.id != v2.id and v1.properties.version != v2.properties.version)
    got = client.get_key("py-key", version=v1.properties.version)
    check("get_key by version", got.id == v1.id, got.id)
    check("get_key latest", client.get_key("py-key").id == v2.id)

    cek = bytes(range(32))
    for alg in (KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa1_5):
        # Wrapping with the public key happens locally in the SDK; unwrapping is remote.
        wrapped = CryptographyClient(v1, cred).wrap_key(alg, cek)
        unwrapped = CryptographyClient(v1.id, cred).unwrap_key(alg, wrapped.encrypted_key)
        check(f"unwrap {alg} by versioned id", unwrapped.key == cek and unwrapped.key_id == v1.id, unwrapped.key_id)
    remote = CryptographyClient(v2.id, cred)
    wrapped = remote.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, cek)
    check("remote wrap names the versioned kid", wrapped.key_id == v2.id, wrapped.key_id)

    props = client.update_key_properties("py-key", version=v1.properties.version, enabled=False)
    check("update_key_properties disables a version", props.properties.enabled is False)
    wrapped_v1 = CryptographyClient(v1, cred).wrap_key(KeyWrapAlgorithm.rsa_oaep, cek)
    expect_http_error(
        "unwrap with a disabled key",
        lambda: CryptographyClient(v1.id, cred).unwrap_key(KeyWrapAlgorithm.rsa_oaep, wrapped_v1.encrypted_key),
        403,
        "Forbidden",
        "KeyDisabled",
    )
    expect_http_error("unknown key", lambda: client.get_key("never-created"), 404, "KeyNotFound", None)
    denied = KeyClient(ENV["VAULT_URL"], StaticCredential(ENV["DENIED_TOKEN"]))
    expect_http_error("principal without an access policy", lambda: denied.get_key(name), 403, "Forbidden", "ForbiddenByPolicy")

    deleted = client.begin_delete_key("py-key").result()
    check("begin_delete_key completes", deleted.name == "py-key" and deleted.recovery_id is not None)
    expect_http_error("deleted key", lambda: client.get_key("py-key"), 404, "KeyNotFound", None)
    recovered = client.begin_recover_deleted_key("py-key").result()
    check("begin_recover_deleted_key completes", recovered.id == v2.id, recovered.id)


def hsm_checks():
    cred = StaticCredential(ENV["HSM_TOKEN"])
    client = KeyClient(ENV["HSM_URL"], cred)
    key = client.create_oct_key("aes", size=256, hardware_protected=True)
    check("managed hsm: create_oct_key", key.key_type == "oct-HSM", key.key_type)
    check("managed hsm: scope", cred.scopes[0] == ("https://managedhsm.sandbox.test/.default",), cred.scopes)
    crypto = CryptographyClient(key.id, cred)
    cek = b"\x07" * 32
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.aes_256, cek)
    check("managed hsm: A256KW wrap", len(wrapped.encrypted_key) == 40 and wrapped.key_id == key.id)
    unwrapped = crypto.unwrap_key(KeyWrapAlgorithm.aes_256, wrapped.encrypted_key)
    check("managed hsm: A256KW unwrap", unwrapped.key == cek)


vault_checks()
hsm_checks()
print("all checks passed")
