"""A throw-away PKI for the TLS end-to-end tests, made with the `openssl` command (Debian package
`openssl`): certificate authorities and certificates they sign (EC P-256), as PEM files in a
directory of the test.
"""

import base64
import hashlib
import os
import shutil
import ssl
import subprocess

from gwx_cluster import TestFailure, check


def _openssl(*args, cwd):
    exe = shutil.which("openssl")
    check(exe, "the openssl command is missing (apt-get install -y openssl)")
    r = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise TestFailure(f"openssl {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


class Pki:
    """CAs and leaf certificates under `dir`; every path returned is absolute."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def make_ca(self, name):
        """A self-signed CA: returns the path of NAME-ca.pem (its key is NAME-ca.key)."""
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.pem", "-days", "2",
                 "-subj", f"/O=gwx e2e/CN={name} test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        return self.path(f"{name}-ca.pem")

    def make_leaf(self, ca, name, subject, sans=()):
        """A certificate for `subject` ("/O=Fleet/CN=device-42") with subjectAltNames `sans`
        ("DNS:localhost", "IP:127.0.0.1", "URI:urn:x"), signed by CA `ca`. Writes NAME.pem (leaf,
        then the CA: a chain) and NAME.key; returns (cert path, key path)."""
        ext = [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth,clientAuth",
        ]
        if sans:
            ext.append("subjectAltName=" + ",".join(sans))
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write("\n".join(ext) + "\n")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}-ca.pem", "-CAkey",
                 f"{ca}-ca.key", "-CAcreateserial", "-out", f"{name}.leaf.pem", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=self.dir)
        with open(self.path(f"{name}.pem"), "w") as out:
            for part in (f"{name}.leaf.pem", f"{ca}-ca.pem"):
                with open(self.path(part)) as f:
                    out.write(f.read())
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def spki_sha256(self, cert_path):
        """base64 SHA-256 of the certificate's public key (Chromium's
        --ignore-certificate-errors-spki-list)."""
        pub = _openssl("x509", "-in", cert_path, "-pubkey", "-noout", cwd=self.dir)
        der = subprocess.run([shutil.which("openssl"), "pkey", "-pubin", "-outform", "der"],
                             input=pub.encode(), capture_output=True, check=True).stdout
        return base64.b64encode(hashlib.sha256(der).digest()).decode()


def client_context(ca_path=None, cert=None, alpn=None):
    """A TLS client context trusting `ca_path` (None: the system's CAs only), with an optional
    client certificate (cert path, key path)."""
    ctx = ssl.create_default_context(cafile=ca_path)
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def peer_common_name(ssl_object):
    """The CN of the certificate a server presented over a verified connection."""
    cert = ssl_object.getpeercert()
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
