"""ferry-sim checked with Microsoft's azure-identity (and azure-keyvault-keys).

Run by sim/tests/entra_python.rs, which starts the sim, provisions it and passes everything in
environment variables (SIM_PORT, SIM_IMDS_PORT, TENANT, ...). REQUESTS_CA_BUNDLE points at the
sandbox CA. Every *.sandbox.test name resolves to 127.0.0.1 (port 443 to the sim's port) through a
patched socket.getaddrinfo, and every other name fails, so nothing can reach a real Azure endpoint. Prints one "ok <check>" line per
passed check; exits 1 on the first failure. Never prints tokens or secrets.
"""

import base64
import json
import os
import socket
import sys

_real_getaddrinfo = socket.getaddrinfo


def _sandbox_getaddrinfo(host, port, *args, **kwargs):
    if isinstance(host, str) and (host == "sandbox.test" or host.endswith(".sandbox.test")):
        host = "127.0.0.1"
        # URLs without a port (as in production: the Key Vault SDK compares the challenge resource
        # with the host *and port* of the vault URL) go to the sim's port.
        if port in (443, "443", "https", None):
            port = int(os.environ["SIM_PORT"])
    elif isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"{host} is not a sandbox host; the test refuses to resolve it")
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _sandbox_getaddrinfo

from azure.core.exceptions import ClientAuthenticationError  # noqa: E402
from azure.identity import (  # noqa: E402
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)

ENV = os.environ
PORT = ENV["SIM_PORT"]
AUTHORITY = f"https://login.sandbox.test:{PORT}"
TENANT = ENV["TENANT"]
CLIENT_ID = ENV["CLIENT_ID"]
STORAGE_SCOPE = "https://storage.azure.com/.default"


def claims(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok {name}")


def expect_aadsts(name, credential, code, scope=STORAGE_SCOPE):
    try:
        credential.get_token(scope)
    except ClientAuthenticationError as error:
        text = str(error)
        check(name, f"AADSTS{code}" in text, f"expected AADSTS{code} in {text[:400]!r}")
        return
    check(name, False, f"expected AADSTS{code}, got a token")


def secret_credential(tenant=TENANT, client_id=CLIENT_ID, secret=None):
    return ClientSecretCredential(
        tenant, client_id, secret or ENV["SECRET"], authority=AUTHORITY, disable_instance_discovery=True
    )


def main():
    # Client secret: success and the token's claims.
    token = secret_credential().get_token(STORAGE_SCOPE)
    c = claims(token.token)
    check("secret: token for storage", c["tid"] == TENANT and c["aud"] == "https://storage.azure.com", c)
    check("secret: oid is the tenant's service principal", c["oid"] == ENV["EXPECTED_OID"], c)
    check("secret: iss", c["iss"] == f"https://sts.windows.net/{TENANT}/", c)
    check("secret: expires_on", token.expires_on > c["iat"] + 3000)

    # Certificate (azure-identity/MSAL build the assertion themselves).
    cert = CertificateCredential(
        TENANT, CLIENT_ID, certificate_path=ENV["CERT_PATH"], authority=AUTHORITY, disable_instance_discovery=True
    )
    c = claims(cert.get_token("https://vault.azure.net/.default").token)
    check("certificate: token for vault", c["aud"] == "https://vault.azure.net" and c["appidacr"] == "2", c)
    cert_sha1 = CertificateCredential(
        TENANT,
        CLIENT_ID,
        certificate_path=ENV["CERT_PATH"],
        authority=AUTHORITY,
        disable_instance_discovery=True,
        send_certificate_chain=True,
    )
    check("certificate: with x5c chain", claims(cert_sha1.get_token(STORAGE_SCOPE).token)["tid"] == TENANT)

    # Errors, as azure-identity surfaces them.
    expect_aadsts("wrong secret -> 7000215", secret_credential(secret="not-the-secret"), 7000215)
    expect_aadsts("expired secret -> 7000222", secret_credential(secret=ENV["EXPIRED_SECRET"]), 7000222)
    # MSAL reads the tenant's OpenID metadata first; for an unknown tenant Entra answers that with
    # 400 AADSTS90002 and MSAL reports "Unable to get authority configuration" (as against Azure).
    try:
        secret_credential(tenant=ENV["UNKNOWN_TENANT"]).get_token(STORAGE_SCOPE)
        check("unknown tenant refused", False, "got a token")
    except (ClientAuthenticationError, ValueError) as error:
        text = str(error)
        check("unknown tenant refused", "AADSTS90002" in text or "Unable to get authority configuration" in text, text[:300])
    expect_aadsts("not consented -> 700016", secret_credential(tenant=ENV["UNCONSENTED_TENANT"]), 700016)
    expect_aadsts("orphaned service principal -> 7000229", secret_credential(tenant=ENV["ORPHANED_TENANT"]), 7000229)
    expect_aadsts(
        "disabled app -> 7000112",
        secret_credential(client_id=ENV["DISABLED_APP"], secret=ENV["DISABLED_APP_SECRET"]),
        7000112,
    )
    unregistered = CertificateCredential(
        TENANT, CLIENT_ID, certificate_path=ENV["OTHER_CERT_PATH"], authority=AUTHORITY, disable_instance_discovery=True
    )
    expect_aadsts("unregistered certificate -> 700027", unregistered, 700027)

    # Managed identity, App Service shape.
    os.environ["IDENTITY_ENDPOINT"] = f"https://identity.sandbox.test:{PORT}/msi/token"
    os.environ["IDENTITY_HEADER"] = ENV["IDENTITY_HEADER"]
    mi = ManagedIdentityCredential(client_id=ENV["MI_CLIENT_ID"])
    mi_token = mi.get_token("api://AzureADTokenExchange/.default").token
    c = claims(mi_token)
    check("managed identity (app service): exchange token", c["sub"] == ENV["MI_OBJECT_ID"], c)
    os.environ["IDENTITY_HEADER"] = "wrong-header"
    try:
        ManagedIdentityCredential(client_id=ENV["MI_CLIENT_ID"]).get_token(STORAGE_SCOPE)
        check("managed identity (app service): wrong header refused", False, "got a token")
    except ClientAuthenticationError:
        check("managed identity (app service): wrong header refused", True)
    del os.environ["IDENTITY_ENDPOINT"]
    del os.environ["IDENTITY_HEADER"]

    # Managed identity, IMDS shape over the plain-http listener.
    os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"http://127.0.0.1:{ENV['SIM_IMDS_PORT']}"
    imds = ManagedIdentityCredential(client_id=ENV["MI_CLIENT_ID"])
    c = claims(imds.get_token(STORAGE_SCOPE).token)
    check("managed identity (imds): token", c["oid"] == ENV["MI_OBJECT_ID"] and c["tid"] == ENV["HOME_TENANT"], c)

    # Federated credential: the MI's exchange token as the app's assertion in the customer tenant.
    federated = ClientAssertionCredential(
        TENANT, CLIENT_ID, lambda: mi_token, authority=AUTHORITY, disable_instance_discovery=True
    )
    c = claims(federated.get_token(STORAGE_SCOPE).token)
    check("federated credential: token in the customer tenant", c["tid"] == TENANT and c["oid"] == ENV["EXPECTED_OID"], c)

    vault_checks(secret_credential())
    print("all checks passed")


def vault_checks(credential):
    vault_url = ENV.get("VAULT_URL")
    if not vault_url:
        return
    from azure.keyvault.keys import KeyClient  # noqa: E402
    from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm  # noqa: E402

    client = KeyClient(vault_url, credential)
    key = client.get_key(ENV["KEY_NAME"])
    check("key vault: get_key through the challenge", key.key_type in ("RSA", "RSA-HSM"), key.key_type)
    crypto = CryptographyClient(key, credential)
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"\x01" * 32)
    unwrapped = crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key)
    check("key vault: wrap/unwrap round trip", unwrapped.key == b"\x01" * 32)


if __name__ == "__main__":
    main()
