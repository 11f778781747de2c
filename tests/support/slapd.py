"""A real OpenLDAP ``slapd`` on 127.0.0.1 for the LDAP tests.

Started from a temporary ``slapd.conf`` (mdb backend, memberof overlay) on free ports:
plain ``ldap://`` (StartTLS offered) and ``ldaps://``, with a certificate from a CA the
test makes. The fixture directory (:data:`FIXTURE`) is loaded with ``ldapadd`` as the
root DN once slapd answers, so the memberof overlay fills ``memberOf``. slapd's stats log
(one line per operation) goes to a file: tests count BINDs and SEARCHes there.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.server import free_port

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
HAVE_SLAPD = Path(SLAPD).exists() and shutil.which("ldapadd") is not None
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"  # a throwaway test directory
SERVICE_DN = f"cn=hatchway,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-Secret-1"
PASSWORDS = {
    "alice": "alice-Pw-1",
    "bob": "bob-Pw-1",
    "carol": "carol-Pw-1",
    "dave": "dave-Pw-1",
    "erin": "erin-Pw-1",
    "frank": "frank-Pw-1",
    "jürgen": "juergen-Pw-1",
}
USERFILTER = "(&(objectClass=inetOrgPerson)(uid={username})(!(employeeType=disabled)))"
DEVS = f"cn=devs,ou=groups,{SUFFIX}"
TEAM_DEVS = f"cn=devs,ou=teams,{SUFFIX}"
ADMINS = f"cn=registry-admins,ou=groups,{SUFFIX}"
BACKEND = f"cn=backend,ou=groups,{SUFFIX}"
ENGINEERING = f"cn=engineering,ou=groups,{SUFFIX}"
COMPANY = f"cn=company,ou=groups,{SUFFIX}"
LOOP_A = f"cn=loop-a,ou=groups,{SUFFIX}"
LOOP_B = f"cn=loop-b,ou=groups,{SUFFIX}"


def _person(uid: str) -> str:
    return (
        f"dn: uid={uid},ou=people,{SUFFIX}\n"
        "objectClass: inetOrgPerson\n"
        f"uid: {uid}\ncn: {uid}\nsn: {uid}\n"
        f"userPassword: {PASSWORDS[uid]}\n"
    )


def _group(dn: str, *members: str) -> str:
    cn = dn.split(",", 1)[0].split("=", 1)[1]
    lines = [f"dn: {dn}", "objectClass: groupOfNames", f"cn: {cn}"]
    lines += [f"member: {m}" for m in members]
    return "\n".join(lines) + "\n"


def _b64(text: str) -> str:
    """LDIF's ``attr:: base64`` form, for values that are not ASCII."""
    return base64.b64encode(text.encode()).decode()


def _user(uid: str) -> str:
    return f"uid={uid},ou=people,{SUFFIX}"


# People; groups in two OUs with the same cn; nesting dave -> backend -> engineering ->
# company, and a cycle loop-a <-> loop-b that dave is in.
FIXTURE = "\n".join(
    [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "dc: example\no: Example\n",
        *(
            f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n"
            for ou in ("people", "groups", "teams", "services")
        ),
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: hatchway\nuserPassword: {SERVICE_PASSWORD}\n",
        *(_person(uid) for uid in ("alice", "bob", "carol", "dave", "erin", "frank")),
        f"dn:: {_b64(_user('jürgen'))}\nobjectClass: inetOrgPerson\nuid:: {_b64('jürgen')}"
        f"\ncn: juergen\nsn: juergen\nuserPassword: {PASSWORDS['jürgen']}\n",
        _group(DEVS, _user("alice"), _user("erin"), _user("frank")),
        _group(TEAM_DEVS, _user("bob")),
        _group(ADMINS, _user("carol")),
        _group(BACKEND, _user("dave")),
        _group(ENGINEERING, BACKEND),
        _group(COMPANY, ENGINEERING),
        _group(LOOP_A, _user("dave"), LOOP_B),
        _group(LOOP_B, LOOP_A),
    ]
)


def make_ca(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA (``ca.pem``) and a server certificate it signed for ``host`` (``server.pem``,
    ``server.key``)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hatchway test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key

database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{rootdn}"
rootpw {rootpw}
directory {dir}/data
overlay memberof
memberof-refint true
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
"""


@dataclass
class Slapd:
    directory: Path
    port: int
    tls_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def log_path(self) -> Path:
        return self.directory / "slapd.log"

    def start(self) -> None:
        urls = f"{self.url}/ {self.ldaps_url}/"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [SLAPD, "-d", "256", "-f", str(self.directory / "slapd.conf"), "-h", urls],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {self.log_path.read_text(errors='replace')}")
            done = self.ldap("ldapwhoami", check=False)
            if done.returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("slapd did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def ldap(
        self, tool: str, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run an ldap-utils ``tool`` as the root DN (the password from a 0600 file)."""
        secret = self.directory / "root.pw"
        cmd = [tool, "-x", "-H", self.url, "-D", ROOT_DN, "-y", str(secret), *args]
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
        if check:
            assert done.returncode == 0, (cmd, done.stdout, done.stderr)
        return done

    def modify(self, ldif: str) -> None:
        self.ldap("ldapmodify", stdin=ldif)

    def delete(self, dn: str) -> None:
        self.ldap("ldapdelete", dn)

    def operations(self) -> tuple[int, int]:
        """(BINDs, SEARCHes) slapd has logged so far (its stats log)."""
        text = self.log_path.read_text(errors="replace")
        binds = sum(1 for line in text.splitlines() if " BIND dn=" in line and " method=" in line)
        searches = sum(1 for line in text.splitlines() if " SRCH base=" in line)
        return binds, searches


def start_slapd(directory: Path) -> Slapd:
    """A fresh slapd loaded with :data:`FIXTURE`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir()
    make_ca(directory)
    secret = directory / "root.pw"
    secret.write_text(ROOT_PASSWORD)  # ldap-utils -y: the whole file, no newline
    secret.chmod(0o600)
    (directory / "slapd.conf").write_text(
        _CONF.format(dir=directory, suffix=SUFFIX, rootdn=ROOT_DN, rootpw=ROOT_PASSWORD)
    )
    server = Slapd(directory, free_port(), free_port())
    server.start()
    server.ldap("ldapadd", stdin=FIXTURE)
    return server


def service_password_file(directory: Path) -> Path:
    path = directory / "bindpw"
    path.write_text(SERVICE_PASSWORD + "\n")
    os.chmod(path, 0o600)
    return path
