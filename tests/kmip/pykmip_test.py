#!/usr/bin/python3
"""The KMIP server driven by Debian's PyKMIP 0.10 (python3-pykmip), as a KMIP client would.

Run with Debian's interpreter, which has PyKMIP, cryptography and boto3:

    /usr/bin/python3 tests/kmip/pykmip_test.py -v

Environment (what `custos server --dev` writes to dev.env; tests/kmip/run.sh sources it):

    CUSTOS_KMIP_HOST, CUSTOS_KMIP_PORT  the KMIP listener (TLS, client certificates)
    CUSTOS_KMIP_CA                      CA certificate that issued the server's certificate
    CUSTOS_KMIP_CERT, CUSTOS_KMIP_KEY   a client certificate and its key
    CUSTOS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
                                        the AWS KMS API of the same server (boto3 test);
                                        CUSTOS_CA_FILE, if set, verifies its TLS
    KMIP_EXTRA_CERT, KMIP_EXTRA_KEY     optional: a second client certificate (from
    [KMIP_EXTRA_CA]                     `custos operator kmip-client create`); its test
                                        is skipped when unset
    CUSTOS_KMIP_TEST_PLAINTEXT          optional: the marker every plaintext starts with (30
                                        bytes); run.sh checks that it never reaches the audit
                                        log or the data directory
    CUSTOS_KMIP_REFERENCE=1             the server is PyKMIP's own (pykmip_reference_server.sh):
                                        the custos-only checks are skipped (boto3, the refusal
                                        of Get, which PyKMIP's server answers with the key)

Every operation runs at KMIP 1.2, 1.4 and 2.0 (one test class per version, e.g.
SymmetricKeyTest_KMIP_2_0) where PyKMIP can express it at that version; a test that PyKMIP
cannot express at a version is skipped with the reason. Expected values are PyKMIP's enums
(kmip/core/enums.py), which carry the specification's numbers: State Pre-Active 1, Active 2,
Deactivated 3, Compromised 4, Destroyed 5, Destroyed Compromised 6; Result Reason Item Not
Found 0x01, Permission Denied 0x0C, Cryptographic Failure 0x0A, and from KMIP 2.0 Object Not
Found 0x37, Object Destroyed 0x36, Wrong Key Lifecycle State 0x43. KMIP 1.x has no Wrong Key
Lifecycle State: its error tables answer an operation on an object in the wrong state with
Permission Denied, so that is what a 1.x request must get.
"""

import datetime
import hashlib
import hmac
import logging
import os
import re
import socket
import ssl
import struct
import sys
import tempfile
import time
import unittest
import uuid
import warnings

# PyKMIP 0.10 calls ssl.wrap_socket (deprecated in Python 3.10+) and logs a warning when no
# PyKMIP configuration file exists; neither is about the server under test.
warnings.filterwarnings("ignore", category=DeprecationWarning)
logging.getLogger().addHandler(logging.NullHandler())

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, padding as sym_padding, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from kmip.core import attributes as cattributes  # noqa: E402
from kmip.core import enums  # noqa: E402
from kmip.core import exceptions as core_exceptions  # noqa: E402
from kmip.core import objects as cobjects  # noqa: E402
from kmip.core import primitives  # noqa: E402
from kmip.core.factories.attributes import AttributeFactory  # noqa: E402
from kmip.core.messages import payloads  # noqa: E402
from kmip.core.messages.contents import ProtocolVersion  # noqa: E402
from kmip.pie import exceptions as pie_exceptions  # noqa: E402
from kmip.pie import objects as pobjects  # noqa: E402
from kmip.pie.client import ProxyKmipClient  # noqa: E402


def _env(name):
    value = os.environ.get(name, "")
    if not value:
        sys.exit("pykmip_test: %s is not set (source the dev server's dev.env)" % name)
    return value


HOST = _env("CUSTOS_KMIP_HOST")
PORT = int(_env("CUSTOS_KMIP_PORT"))
CA = _env("CUSTOS_KMIP_CA")
CERT = _env("CUSTOS_KMIP_CERT")
KEY = _env("CUSTOS_KMIP_KEY")
REFERENCE = os.environ.get("CUSTOS_KMIP_REFERENCE") == "1"
# Every plaintext, MAC and signature input starts with this marker; 30 bytes (a multiple of
# 3), so its base64 is a prefix of every such input's base64.
PT_MARK = os.environ.get("CUSTOS_KMIP_TEST_PLAINTEXT", "kmip-test-plaintext-5c1f9e07ab").encode()
if len(PT_MARK) != 30:
    sys.exit("pykmip_test: CUSTOS_KMIP_TEST_PLAINTEXT must be 30 bytes")
RUN = uuid.uuid4().hex[:10]  # names are unique per run

V12, V14, V20 = enums.KMIPVersion.KMIP_1_2, enums.KMIPVersion.KMIP_1_4, enums.KMIPVersion.KMIP_2_0
VERSIONS = (V12, V14, V20)
WIRE_VERSION = {V12: (1, 2), V14: (1, 4), V20: (2, 0)}

Alg = enums.CryptographicAlgorithm
Mask = enums.CryptographicUsageMask
State = enums.State
Reason = enums.ResultReason
AttrType = enums.AttributeType
T = enums.Tags

_tmp = tempfile.TemporaryDirectory(prefix="pykmip-test-")
# An empty PyKMIP client configuration: nothing from ~/.pykmip or /etc/pykmip leaks in.
_CONFIG = os.path.join(_tmp.name, "pykmip.conf")
open(_CONFIG, "w").close()
_factory = AttributeFactory()


def not_found_reasons(version):
    """Unknown unique identifier: Item Not Found; KMIP 2.0 also has Object Not Found."""
    return {Reason.ITEM_NOT_FOUND, Reason.OBJECT_NOT_FOUND} if version >= V20 else {Reason.ITEM_NOT_FOUND}


def wrong_state_reasons(version):
    """An operation the object's state does not allow (KMIP 1.x: Permission Denied)."""
    return {Reason.WRONG_KEY_LIFECYCLE_STATE} if version >= V20 else {Reason.PERMISSION_DENIED}


def attr(kind, value):
    return _factory.create_attribute(kind, value)


def plaintext(suffix):
    return PT_MARK + b" " + suffix.encode()


GCM = {"cryptographic_algorithm": Alg.AES, "block_cipher_mode": enums.BlockCipherMode.GCM, "tag_length": 16}
CBC = {"cryptographic_algorithm": Alg.AES, "block_cipher_mode": enums.BlockCipherMode.CBC,
       "padding_method": enums.PaddingMethod.PKCS5}


def with_random_iv(params):
    p = dict(params)
    p["random_iv"] = True
    return p


# --- TTLV, for what PyKMIP cannot send: Add Attribute, malformed input, response headers ------

STRUCTURE, INTEGER, ENUMERATION, TEXT, BYTES = 0x01, 0x02, 0x05, 0x07, 0x08


def ttlv(tag, typ, value):
    pad = (8 - len(value) % 8) % 8
    tag = tag.value if isinstance(tag, enums.Tags) else tag
    return struct.pack(">I", tag)[1:] + struct.pack(">BI", typ, len(value)) + value + b"\0" * pad


def t_struct(tag, *items):
    return ttlv(tag, STRUCTURE, b"".join(items))


def t_int(tag, v):
    return ttlv(tag, INTEGER, struct.pack(">i", v))


def t_enum(tag, v):
    return ttlv(tag, ENUMERATION, struct.pack(">I", v.value if hasattr(v, "value") else v))


def t_text(tag, s):
    return ttlv(tag, TEXT, s.encode())


def ttlv_decode(buf, offset=0, end=None):
    """Decodes the items in buf[offset:end] into [(tag, type, value)], a structure's value
    being its items, integers and enumerations ints, text str, anything else bytes."""
    end = len(buf) if end is None else end
    items = []
    while offset < end:
        if end - offset < 8:
            raise ValueError("truncated item header at %d" % offset)
        tag = int.from_bytes(buf[offset:offset + 3], "big")
        typ = buf[offset + 3]
        length = struct.unpack(">I", buf[offset + 4:offset + 8])[0]
        start = offset + 8
        if start + length > end:
            raise ValueError("item at %d overruns its container" % offset)
        raw = bytes(buf[start:start + length])
        if typ == STRUCTURE:
            value = ttlv_decode(buf, start, start + length)
        elif typ in (INTEGER, ENUMERATION):
            value = struct.unpack(">i" if typ == INTEGER else ">I", raw)[0]
        elif typ == TEXT:
            value = raw.decode()
        else:
            value = raw
        items.append((tag, typ, value))
        offset = start + length + (8 - length % 8) % 8
    return items


def child(item, tag):
    for c in item[2]:
        if c[0] == tag.value:
            return c
    return None


def kmip_request(version, operation, *payload_items):
    major, minor = WIRE_VERSION[version]
    return t_struct(
        T.REQUEST_MESSAGE,
        t_struct(T.REQUEST_HEADER,
                 t_struct(T.PROTOCOL_VERSION, t_int(T.PROTOCOL_VERSION_MAJOR, major),
                          t_int(T.PROTOCOL_VERSION_MINOR, minor)),
                 t_int(T.BATCH_COUNT, 1)),
        t_struct(T.BATCH_ITEM, t_enum(T.OPERATION, operation), t_struct(T.REQUEST_PAYLOAD, *payload_items)))


class ServerSilent(AssertionError):
    pass


def tls_socket(cert=CERT, key=KEY, timeout=5.0):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # as PyKMIP: the CA is pinned, the name is not checked
    ctx.load_verify_locations(CA)
    if cert:
        ctx.load_cert_chain(cert, key)
    sock = socket.create_connection((HOST, PORT), timeout=timeout)
    return ctx.wrap_socket(sock)


def read_message(sock):
    """One TTLV message from sock; None when the server closed the connection instead
    (EOF, reset, TLS alert). Raises ServerSilent when it does neither within the timeout."""
    buf = b""
    want = 8
    try:
        while len(buf) < want:
            chunk = sock.recv(want - len(buf))
            if not chunk:
                return None
            buf += chunk
            if len(buf) == 8 and want == 8:
                want = 8 + struct.unpack(">I", buf[4:8])[0]
                if want > (16 << 20):
                    raise AssertionError("response announces %d bytes" % want)
    except socket.timeout:
        raise ServerSilent("the server neither answered nor closed the connection within %.0f s"
                           % sock.gettimeout())
    except (ConnectionError, ssl.SSLError):
        return None
    return buf


def raw_call(version, operation, *payload_items):
    """Sends one request over a fresh TLS connection; returns the decoded Response Message."""
    with tls_socket() as s:
        s.sendall(kmip_request(version, operation, *payload_items))
        resp = read_message(s)
    if resp is None:
        raise AssertionError("the server closed the connection without answering")
    (msg,) = ttlv_decode(resp)
    assert msg[0] == T.RESPONSE_MESSAGE.value, "not a Response Message: tag %06x" % msg[0]
    return msg


def batch_result(msg):
    item = child(msg, T.BATCH_ITEM)
    status = child(item, T.RESULT_STATUS)
    reason = child(item, T.RESULT_REASON)
    text = child(item, T.RESULT_MESSAGE)
    return (enums.ResultStatus(status[2]), reason and Reason(reason[2]), text and text[2],
            child(item, T.RESPONSE_PAYLOAD))


# --- the versioned tests --------------------------------------------------------------------


class KmipTestCase(unittest.TestCase):
    VERSION = V14  # each generated class sets its own

    def client(self, cert=CERT, key=KEY, ca=CA):
        c = ProxyKmipClient(hostname=HOST, port=PORT, cert=cert, key=key, ca=ca,
                            config_file=_CONFIG, kmip_version=self.VERSION)
        c.open()
        self.addCleanup(c.close)
        return c

    def name(self, what):
        return "pykmip-%s-%s-%s" % (RUN, what, str(self.VERSION.value).replace(".", ""))

    def create_aes(self, c, length=256, name=None, activate=False):
        name = name or self.name("aes%d-%s" % (length, uuid.uuid4().hex[:6]))
        uid = c.create(Alg.AES, length, name=name, cryptographic_usage_mask=[Mask.ENCRYPT, Mask.DECRYPT])
        self.assertIsInstance(uid, str)
        self.assertTrue(uid)
        if activate:
            c.activate(uid)
        return uid

    def attrs(self, c, uid, names=None):
        """Get Attributes as {name: [values]} (a Name as its text, an enumeration as the enum)."""
        got_uid, attributes = c.get_attributes(uid, names)
        self.assertEqual(got_uid, uid)
        out = {}
        for a in attributes:
            v = a.attribute_value
            if a.attribute_name.value == "Name":
                v = v.name_value.value
            elif hasattr(v, "value"):
                v = v.value
            out.setdefault(a.attribute_name.value, []).append(v)
        return out

    def state(self, c, uid):
        return self.attrs(c, uid, ["State"])["State"]

    def refused(self, fn, *args, **kwargs):
        """Runs fn, which must fail with a KMIP error; returns (reason, message)."""
        try:
            fn(*args, **kwargs)
        except pie_exceptions.KmipOperationFailure as e:
            self.assertEqual(e.status, enums.ResultStatus.OPERATION_FAILED)
            return e.reason, e.message
        except core_exceptions.OperationFailure as e:  # from KMIPProxy.send_request_payload
            self.assertEqual(e.status, enums.ResultStatus.OPERATION_FAILED)
            return e.reason, str(e)
        self.fail("%s succeeded; a KMIP error was expected" % getattr(fn, "__name__", fn))

    def assertRefused(self, reasons, fn, *args, **kwargs):
        reason, message = self.refused(fn, *args, **kwargs)
        self.assertIn(reason, reasons, "result message: %r" % message)
        return message

    # Encrypt/Decrypt at the payload level: ProxyKmipClient.encrypt returns neither the
    # Authenticated Encryption Tag nor takes AAD, and ProxyKmipClient.decrypt takes no tag.
    def encrypt(self, c, uid, data, params, iv=None, aad=None):
        r = c.proxy.send_request_payload(enums.Operation.ENCRYPT, payloads.EncryptRequestPayload(
            unique_identifier=uid, data=data, cryptographic_parameters=c._build_cryptographic_parameters(params),
            iv_counter_nonce=iv, auth_additional_data=aad))
        self.assertEqual(r.unique_identifier, uid)
        return r.data, r.iv_counter_nonce, r.auth_tag

    def decrypt(self, c, uid, data, params, iv=None, aad=None, tag=None):
        r = c.proxy.send_request_payload(enums.Operation.DECRYPT, payloads.DecryptRequestPayload(
            unique_identifier=uid, data=data, cryptographic_parameters=c._build_cryptographic_parameters(params),
            iv_counter_nonce=iv, auth_additional_data=aad, auth_tag=tag))
        self.assertEqual(r.unique_identifier, uid)
        return r.data

    def require_gcm(self):
        if self.VERSION < V14:
            self.skipTest("KMIP 1.2 has no Authenticated Encryption Tag/Additional Data fields "
                          "(PyKMIP encodes them from 1.4 on): no AES-GCM round trip")


class DiscoverAndQuery:
    def test_discover_versions(self):
        c = self.client()
        r = c.proxy.discover_versions()
        self.assertEqual(r.result_status.value, enums.ResultStatus.SUCCESS)
        versions = [(v.major, v.minor) for v in r.protocol_versions]
        for want in ((2, 0), (1, 4), (1, 2)):
            self.assertIn(want, versions)
        self.assertEqual(versions, sorted(versions, reverse=True), "preferred (newest) first")
        # Asked about some versions, the server answers those it speaks, in the client's order.
        r = c.proxy.discover_versions(protocol_versions=[ProtocolVersion(1, 4), ProtocolVersion(3, 9),
                                                         ProtocolVersion(1, 2)])
        self.assertEqual([(v.major, v.minor) for v in r.protocol_versions], [(1, 4), (1, 2)])

    def test_response_header_carries_the_request_version(self):
        msg = raw_call(self.VERSION, enums.Operation.DISCOVER_VERSIONS)
        header = child(msg, T.RESPONSE_HEADER)
        pv = child(header, T.PROTOCOL_VERSION)
        self.assertEqual((child(pv, T.PROTOCOL_VERSION_MAJOR)[2], child(pv, T.PROTOCOL_VERSION_MINOR)[2]),
                         WIRE_VERSION[self.VERSION])
        self.assertIsNotNone(child(header, T.TIME_STAMP))
        self.assertEqual(child(header, T.BATCH_COUNT)[2], 1)
        self.assertEqual(batch_result(msg)[0], enums.ResultStatus.SUCCESS)

    def test_query(self):
        c = self.client()
        r = c.proxy.query(query_functions=[enums.QueryFunction.QUERY_OPERATIONS, enums.QueryFunction.QUERY_OBJECTS])
        self.assertEqual(r.result_status.value, enums.ResultStatus.SUCCESS)
        Op = enums.Operation
        want = {Op.CREATE, Op.CREATE_KEY_PAIR, Op.REGISTER, Op.LOCATE, Op.GET, Op.GET_ATTRIBUTES,
                Op.GET_ATTRIBUTE_LIST, Op.ACTIVATE, Op.REVOKE, Op.DESTROY, Op.QUERY, Op.DISCOVER_VERSIONS,
                Op.ENCRYPT, Op.DECRYPT, Op.SIGN, Op.SIGNATURE_VERIFY, Op.MAC, Op.MODIFY_ATTRIBUTE,
                Op.DELETE_ATTRIBUTE, Op.SET_ATTRIBUTE if self.VERSION >= V20 else Op.ADD_ATTRIBUTE}
        self.assertEqual(want - set(r.operations), set(), "operations Query does not list")
        want = {enums.ObjectType.SYMMETRIC_KEY, enums.ObjectType.PUBLIC_KEY, enums.ObjectType.PRIVATE_KEY}
        self.assertEqual(want - set(r.object_types), set(), "object types Query does not list")


class SymmetricKeyTest:
    def test_create_aes_and_get_attributes(self):
        c = self.client()
        for length in (256, 128):
            with self.subTest(length=length):
                name = self.name("create%d" % length)
                uid = self.create_aes(c, length, name=name)
                # All attributes (no names given), as a PyKMIP user would ask: PyKMIP must be
                # able to decode every one the server returns.
                a = self.attrs(c, uid)
                self.assertEqual(a["Cryptographic Algorithm"], [Alg.AES])
                self.assertEqual(a["Cryptographic Length"], [length])
                self.assertEqual(a["State"], [State.PRE_ACTIVE])
                self.assertEqual(a["Object Type"], [enums.ObjectType.SYMMETRIC_KEY])
                self.assertEqual(a["Name"], [name])
                self.assertEqual(a["Cryptographic Usage Mask"], [Mask.ENCRYPT.value | Mask.DECRYPT.value])
                # Named attributes: exactly those.
                names = ["State", "Cryptographic Length", "Object Type"]
                a = self.attrs(c, uid, names)
                self.assertEqual(a, {"State": [State.PRE_ACTIVE], "Cryptographic Length": [length],
                                     "Object Type": [enums.ObjectType.SYMMETRIC_KEY]})
                listed = c.get_attribute_list(uid)
                for n in ("Cryptographic Algorithm", "Cryptographic Length", "Cryptographic Usage Mask",
                          "Name", "Object Type", "State", "Unique Identifier"):
                    self.assertIn(n, listed)

    def test_activate_and_aes_cbc(self):
        c = self.client()
        uid = self.create_aes(c)
        c.activate(uid)
        self.assertEqual(self.state(c, uid), [State.ACTIVE])
        pt = plaintext("cbc round trip")  # 45 bytes: PKCS#5 pads to 48
        iv = os.urandom(16)
        # ProxyKmipClient's own encrypt/decrypt, client IV.
        ct, server_iv = c.encrypt(pt, uid, CBC, iv)
        self.assertIsNone(server_iv, "the server returned an IV although the client gave one")
        self.assertEqual(len(ct), 48)
        self.assertNotIn(PT_MARK, ct)
        self.assertEqual(c.decrypt(ct, uid, CBC, iv), pt)
        self.assertEqual(c.encrypt(pt, uid, CBC, iv)[0], ct, "same key, IV and plaintext: same ciphertext")
        self.assertNotEqual(c.encrypt(pt, uid, CBC, os.urandom(16))[0], ct)
        # Server-made IV (Random IV true, no IV given).
        ct2, iv2 = c.encrypt(pt, uid, with_random_iv(CBC))
        self.assertIsInstance(iv2, bytes)
        self.assertEqual(len(iv2), 16)
        self.assertEqual(len(ct2), 48)
        self.assertEqual(c.decrypt(ct2, uid, CBC, iv2), pt)
        # Exactly one block of plaintext gets a whole block of padding.
        ct3, _ = c.encrypt(pt[:32], uid, CBC, iv)
        self.assertEqual(len(ct3), 48)
        self.assertEqual(c.decrypt(ct3, uid, CBC, iv), pt[:32])

    def test_aes_gcm(self):
        self.require_gcm()
        c = self.client()
        uid = self.create_aes(c, 256, activate=True)
        pt = plaintext("gcm round trip")
        aad = b"kmip aad context"
        iv = os.urandom(12)
        ct, out_iv, tag = self.encrypt(c, uid, pt, GCM, iv=iv, aad=aad)
        self.assertIsNone(out_iv)
        self.assertEqual(len(ct), len(pt))
        self.assertNotIn(PT_MARK, ct)
        self.assertIsInstance(tag, bytes)
        self.assertEqual(len(tag), 16)
        self.assertEqual(self.decrypt(c, uid, ct, GCM, iv=iv, aad=aad, tag=tag), pt)
        # Tampered ciphertext, tampered tag, other AAD, no AAD: refused.
        bad_ct = bytes([ct[0] ^ 1]) + ct[1:]
        bad_tag = tag[:-1] + bytes([tag[-1] ^ 0x80])
        for what, args in (("ciphertext", dict(data=bad_ct, tag=tag, aad=aad)),
                           ("tag", dict(data=ct, tag=bad_tag, aad=aad)),
                           ("aad", dict(data=ct, tag=tag, aad=b"other context")),
                           ("no aad", dict(data=ct, tag=tag, aad=None))):
            with self.subTest(tampered=what):
                self.assertRefused({Reason.CRYPTOGRAPHIC_FAILURE}, self.decrypt, c, uid, args["data"], GCM,
                                   iv=iv, aad=args["aad"], tag=args["tag"])
        # Without AAD, server-made IV.
        ct, out_iv, tag = self.encrypt(c, uid, pt, with_random_iv(GCM))
        self.assertIsInstance(out_iv, bytes)
        self.assertGreaterEqual(len(out_iv), 12)
        self.assertEqual(len(ct), len(pt))
        self.assertEqual(len(tag), 16)
        self.assertEqual(self.decrypt(c, uid, ct, GCM, iv=out_iv, tag=tag), pt)
        # AES-128 too.
        uid128 = self.create_aes(c, 128, activate=True)
        ct, _, tag = self.encrypt(c, uid128, pt, GCM, iv=iv, aad=aad)
        self.assertEqual(self.decrypt(c, uid128, ct, GCM, iv=iv, aad=aad, tag=tag), pt)
        self.assertRefused({Reason.CRYPTOGRAPHIC_FAILURE}, self.decrypt, c, uid, ct, GCM, iv=iv, aad=aad, tag=tag)

    def test_locate(self):
        c = self.client()
        name_a, name_b = self.name("locate-a"), self.name("locate-b")
        a = self.create_aes(c, name=name_a, activate=True)
        b = self.create_aes(c, name=name_b)
        self.assertEqual(c.locate(attributes=[attr(AttrType.NAME, name_a)]), [a])
        self.assertEqual(c.locate(attributes=[attr(AttrType.NAME, name_b)]), [b])
        self.assertEqual(c.locate(attributes=[attr(AttrType.NAME, self.name("no-such-name"))]), [])
        sym = attr(AttrType.OBJECT_TYPE, enums.ObjectType.SYMMETRIC_KEY)
        active = attr(AttrType.STATE, State.ACTIVE)
        pre_active = attr(AttrType.STATE, State.PRE_ACTIVE)
        self.assertEqual(c.locate(attributes=[sym, active, attr(AttrType.NAME, name_a)]), [a])
        self.assertEqual(c.locate(attributes=[sym, pre_active, attr(AttrType.NAME, name_a)]), [])
        found = c.locate(maximum_items=10000, attributes=[sym, active])
        self.assertIn(a, found)
        self.assertNotIn(b, found)
        found = c.locate(maximum_items=10000, attributes=[sym, pre_active])
        self.assertIn(b, found)
        self.assertNotIn(a, found)
        self.assertEqual(c.locate(attributes=[attr(AttrType.OBJECT_TYPE, enums.ObjectType.PUBLIC_KEY),
                                              attr(AttrType.NAME, name_a)]), [])

    def test_get_symmetric_key_is_refused(self):
        c = self.client()
        uid = self.create_aes(c, activate=True)
        if REFERENCE:  # PyKMIP's server exports the key material
            key = c.get(uid)
            self.assertIsInstance(key, pobjects.SymmetricKey)
            self.assertEqual(len(key.value), 32)
            return
        message = self.assertRefused({Reason.PERMISSION_DENIED}, c.get, uid)
        self.assertRegex(message, re.compile(r"export|extract", re.I),
                         "the result message should say that key material is not exported")

    def test_revoke(self):
        c = self.client()
        for code in (enums.RevocationReasonCode.UNSPECIFIED, enums.RevocationReasonCode.CESSATION_OF_OPERATION):
            with self.subTest(reason=code.name):
                uid = self.create_aes(c, activate=True)
                c.revoke(code, uid, revocation_message="pykmip test")
                self.assertEqual(self.state(c, uid), [State.DEACTIVATED])
                self.assertRefused(wrong_state_reasons(self.VERSION), c.encrypt, plaintext("x"), uid, CBC,
                                   os.urandom(16))
        uid = self.create_aes(c, activate=True)
        c.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, uid, compromise_occurrence_date=int(time.time()) - 60)
        self.assertEqual(self.state(c, uid), [State.COMPROMISED])
        self.assertRefused(wrong_state_reasons(self.VERSION), c.encrypt, plaintext("x"), uid, CBC, os.urandom(16))

    def test_destroy(self):
        c = self.client()
        uid = self.create_aes(c, activate=True)
        self.assertRefused(wrong_state_reasons(self.VERSION), c.destroy, uid)
        self.assertEqual(self.state(c, uid), [State.ACTIVE])
        c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
        c.destroy(uid)
        # The server keeps the object (its deletion window) in state Destroyed.
        self.assertEqual(self.state(c, uid), [State.DESTROYED])
        destroyed = wrong_state_reasons(self.VERSION) | ({Reason.OBJECT_DESTROYED} if self.VERSION >= V20 else set())
        self.assertRefused(destroyed, c.encrypt, plaintext("x"), uid, CBC, os.urandom(16))
        self.assertRefused(destroyed, c.activate, uid)
        # A Pre-Active key may be destroyed at once; a compromised one becomes Destroyed Compromised.
        uid = self.create_aes(c)
        c.destroy(uid)
        self.assertEqual(self.state(c, uid), [State.DESTROYED])
        uid = self.create_aes(c, activate=True)
        c.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, uid, compromise_occurrence_date=int(time.time()))
        c.destroy(uid)
        self.assertEqual(self.state(c, uid), [State.DESTROYED_COMPROMISED])

    def test_unknown_unique_identifier(self):
        c = self.client()
        uid = "no-such-key-" + uuid.uuid4().hex
        reasons = not_found_reasons(self.VERSION)
        self.assertRefused(reasons, c.get_attributes, uid)
        self.assertRefused(reasons, c.activate, uid)
        self.assertRefused(reasons, c.encrypt, plaintext("x"), uid, CBC, os.urandom(16))
        self.assertRefused(reasons, c.destroy, uid)

    def test_register_stores_the_given_material(self):
        c = self.client()
        key = os.urandom(32)
        name = self.name("registered")
        uid = c.register(pobjects.SymmetricKey(Alg.AES, 256, key, masks=[Mask.ENCRYPT, Mask.DECRYPT], name=name))
        a = self.attrs(c, uid, ["Cryptographic Algorithm", "Cryptographic Length", "State", "Name"])
        self.assertEqual(a, {"Cryptographic Algorithm": [Alg.AES], "Cryptographic Length": [256],
                             "State": [State.PRE_ACTIVE], "Name": [name]})
        c.activate(uid)
        pt = plaintext("registered key")
        iv = os.urandom(16)
        ct, _ = c.encrypt(pt, uid, CBC, iv)
        padder = sym_padding.PKCS7(128).padder()
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        self.assertEqual(ct, enc.update(padder.update(pt) + padder.finalize()) + enc.finalize())
        if self.VERSION >= V14:
            iv = os.urandom(12)
            ct, _, tag = self.encrypt(c, uid, pt, GCM, iv=iv, aad=b"registered aad")
            self.assertEqual(AESGCM(key).decrypt(iv, ct + tag, b"registered aad"), pt)

    def test_aws_kms_api_uses_a_kmip_key(self):
        if REFERENCE:
            self.skipTest("custos only: PyKMIP's server has no AWS KMS API")
        import boto3
        import botocore.config
        c = self.client()
        uid = self.create_aes(c, name=self.name("for-boto3"), activate=True)
        kms = boto3.client("kms", endpoint_url=_env("CUSTOS_ENDPOINT"), region_name=_env("AWS_REGION"),
                           aws_access_key_id=_env("AWS_ACCESS_KEY_ID"),
                           aws_secret_access_key=_env("AWS_SECRET_ACCESS_KEY"),
                           verify=os.environ.get("CUSTOS_CA_FILE") or None,
                           config=botocore.config.Config(retries={"max_attempts": 1}))
        meta = kms.describe_key(KeyId=uid)["KeyMetadata"]
        self.assertEqual(meta["KeyId"], uid)
        self.assertIs(meta["Enabled"], True)
        self.assertEqual(meta["KeyState"], "Enabled")
        pt = plaintext("through boto3")
        enc = kms.encrypt(KeyId=uid, Plaintext=pt, EncryptionContext={"via": "kmip-test"})
        self.assertNotIn(PT_MARK, enc["CiphertextBlob"])
        self.assertTrue(enc["KeyId"].endswith(uid), enc["KeyId"])
        dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"via": "kmip-test"})
        self.assertEqual(dec["Plaintext"], pt)
        self.assertTrue(dec["KeyId"].endswith(uid), dec["KeyId"])


class AttributeTest:
    def test_custom_attribute(self):
        c = self.client()
        uid = self.create_aes(c)
        if self.VERSION >= V20:
            # KMIP 2.0's custom attributes are Vendor Attributes, which PyKMIP 0.10 cannot encode
            # or decode (its set_attribute takes standard attribute names only): Set, Modify and
            # Delete Attribute with a client-modifiable standard attribute instead.
            c.set_attribute(uid, attribute_name="Contact Information", attribute_value="alice")
            self.assertEqual(self.attrs(c, uid, ["Contact Information"]), {"Contact Information": ["alice"]})
            new = cobjects.NewAttribute(attribute=primitives.TextString("bob", tag=T.CONTACT_INFORMATION))
            self.assertEqual(c.modify_attribute(uid, new_attribute=new), (uid, None))
            self.assertEqual(self.attrs(c, uid, ["Contact Information"]), {"Contact Information": ["bob"]})
            cur = cobjects.CurrentAttribute(attribute=primitives.TextString("bob", tag=T.CONTACT_INFORMATION))
            self.assertEqual(c.delete_attribute(uid, current_attribute=cur), (uid, None))
            self.assertNotIn("Contact Information", self.attrs(c, uid))
            self.assertNotIn("Contact Information", c.get_attribute_list(uid))
            return
        # KMIP 1.x: Add Attribute (not in PyKMIP at all: sent as TTLV), then PyKMIP's Modify and
        # Delete Attribute with the 1.x Attribute structure.
        msg = raw_call(self.VERSION, enums.Operation.ADD_ATTRIBUTE, t_text(T.UNIQUE_IDENTIFIER, uid),
                       t_struct(T.ATTRIBUTE, t_text(T.ATTRIBUTE_NAME, "x-owner"), t_text(T.ATTRIBUTE_VALUE, "alice")))
        status, reason, text, payload = batch_result(msg)
        self.assertEqual(status, enums.ResultStatus.SUCCESS, "Add Attribute: %s %s" % (reason, text))
        self.assertEqual(child(payload, T.UNIQUE_IDENTIFIER)[2], uid)
        added = child(payload, T.ATTRIBUTE)
        self.assertEqual(child(added, T.ATTRIBUTE_NAME)[2], "x-owner")
        self.assertEqual(child(added, T.ATTRIBUTE_VALUE)[2], "alice")
        self.assertEqual(self.attrs(c, uid)["x-owner"], ["alice"])
        self.assertEqual(self.attrs(c, uid, ["x-owner"]), {"x-owner": ["alice"]})
        self.assertIn("x-owner", c.get_attribute_list(uid))
        new = cobjects.Attribute(attribute_name=cobjects.Attribute.AttributeName("x-owner"),
                                 attribute_value=cattributes.CustomAttribute("bob"))
        got_uid, modified = c.modify_attribute(uid, attribute=new)
        self.assertEqual(got_uid, uid)
        self.assertEqual((modified.attribute_name.value, modified.attribute_value.value), ("x-owner", "bob"))
        self.assertEqual(self.attrs(c, uid, ["x-owner"]), {"x-owner": ["bob"]})
        got_uid, deleted = c.delete_attribute(uid, attribute_name="x-owner")
        self.assertEqual(got_uid, uid)
        self.assertEqual((deleted.attribute_name.value, deleted.attribute_value.value), ("x-owner", "bob"))
        self.assertNotIn("x-owner", self.attrs(c, uid))
        self.assertNotIn("x-owner", c.get_attribute_list(uid))


class MacAndSignTest:
    def test_hmac_sha256(self):
        c = self.client()
        # KMIPProxy.create: ProxyKmipClient.create always adds Encrypt|Decrypt to the usage mask.
        r = c.proxy.create(enums.ObjectType.SYMMETRIC_KEY, cobjects.TemplateAttribute(attributes=[
            attr(AttrType.CRYPTOGRAPHIC_ALGORITHM, Alg.HMAC_SHA256),
            attr(AttrType.CRYPTOGRAPHIC_LENGTH, 256),
            attr(AttrType.CRYPTOGRAPHIC_USAGE_MASK, [Mask.MAC_GENERATE, Mask.MAC_VERIFY]),
            attr(AttrType.NAME, self.name("hmac"))]))
        self.assertEqual(r.result_status.value, enums.ResultStatus.SUCCESS,
                         r.result_message and r.result_message.value)
        uid = r.uuid
        a = self.attrs(c, uid, ["Cryptographic Algorithm", "Cryptographic Length", "Cryptographic Usage Mask"])
        self.assertEqual(a, {"Cryptographic Algorithm": [Alg.HMAC_SHA256], "Cryptographic Length": [256],
                             "Cryptographic Usage Mask": [Mask.MAC_GENERATE.value | Mask.MAC_VERIFY.value]})
        c.activate(uid)
        data = plaintext("mac input")
        got_uid, mac = c.mac(data, uid, Alg.HMAC_SHA256)
        self.assertEqual(got_uid, uid)
        self.assertEqual(len(mac), 32)
        self.assertEqual(c.mac(data, uid, Alg.HMAC_SHA256)[1], mac)
        self.assertNotEqual(c.mac(data + b".", uid, Alg.HMAC_SHA256)[1], mac)
        # A key without MAC Generate in its usage mask (an AES key) is refused.
        aes = self.create_aes(c, activate=True)
        reasons = {Reason.PERMISSION_DENIED, Reason.ILLEGAL_OPERATION, Reason.INVALID_FIELD}
        if self.VERSION >= V20:
            reasons.add(Reason.INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK)
        self.assertRefused(reasons, c.mac, data, aes, Alg.HMAC_SHA256)

    def test_hmac_sha256_of_a_registered_key(self):
        # With known key bytes the MAC can be checked here.
        c = self.client()
        key = os.urandom(32)
        uid = c.register(pobjects.SymmetricKey(Alg.HMAC_SHA256, 256, key, masks=[Mask.MAC_GENERATE, Mask.MAC_VERIFY],
                                               name=self.name("hmac-registered")))
        c.activate(uid)
        data = plaintext("mac input")
        self.assertEqual(c.mac(data, uid, Alg.HMAC_SHA256), (uid, hmac.new(key, data, hashlib.sha256).digest()))

    def test_ecdsa_p256_sign_and_verify(self):
        c = self.client()
        pub, priv = c.create_key_pair(Alg.EC, 256, public_name=self.name("ec-pub"), public_usage_mask=[Mask.VERIFY],
                                      private_name=self.name("ec-priv"), private_usage_mask=[Mask.SIGN])
        self.assertNotEqual(pub, priv)
        self.assertEqual(self.attrs(c, pub, ["Object Type", "Cryptographic Algorithm", "Cryptographic Length"]),
                         {"Object Type": [enums.ObjectType.PUBLIC_KEY], "Cryptographic Algorithm": [Alg.EC],
                          "Cryptographic Length": [256]})
        self.assertEqual(self.attrs(c, priv, ["Object Type"]), {"Object Type": [enums.ObjectType.PRIVATE_KEY]})
        c.activate(pub)
        c.activate(priv)
        params = {"digital_signature_algorithm": enums.DigitalSignatureAlgorithm.ECDSA_WITH_SHA256}
        data = plaintext("signed message")
        sig = c.sign(data, priv, params)
        self.assertIsInstance(sig, bytes)
        self.assertEqual(c.signature_verify(data, sig, pub, params), enums.ValidityIndicator.VALID)
        self.assertEqual(c.signature_verify(data + b"!", sig, pub, params), enums.ValidityIndicator.INVALID)
        # The public key, fetched with Get, verifies the signature here (X.509
        # SubjectPublicKeyInfo: the only public-key format PyKMIP decodes besides RAW/PKCS#1).
        key = c.get(pub)
        self.assertIsInstance(key, pobjects.PublicKey)
        self.assertEqual(key.key_format_type, enums.KeyFormatType.X_509)
        public = serialization.load_der_public_key(key.value)
        self.assertIsInstance(public, ec.EllipticCurvePublicKey)
        self.assertEqual(public.curve.name, "secp256r1")
        public.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        if not REFERENCE:
            self.assertRefused({Reason.PERMISSION_DENIED}, c.get, priv)


def _versioned(mixin):
    for v in VERSIONS:
        name = "%s_KMIP_%s" % (mixin.__name__, str(v.value).replace(".", "_"))
        globals()[name] = type(name, (mixin, KmipTestCase), {"VERSION": v})


for _m in (DiscoverAndQuery, SymmetricKeyTest, AttributeTest, MacAndSignTest):
    _versioned(_m)


# --- connections: other clients, refusals, malformed input ------------------------------------


def _foreign_client_certificate(directory, common_name):
    """A client certificate for common_name issued by a CA the server does not know."""
    now = datetime.datetime.utcnow()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pykmip test foreign CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "foreign.crt"), os.path.join(directory, "foreign.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class ConnectionTest(KmipTestCase):
    VERSION = V14

    def assertWorks(self):
        """A fresh PyKMIP connection is served."""
        c = self.client()
        r = c.proxy.discover_versions()
        self.assertEqual(r.result_status.value, enums.ResultStatus.SUCCESS)
        self.assertIn((1, 4), [(v.major, v.minor) for v in r.protocol_versions])

    def assertTlsRefused(self, cert, key):
        c = ProxyKmipClient(hostname=HOST, port=PORT, cert=cert, key=key, ca=CA, config_file=_CONFIG,
                            kmip_version=V14)
        try:
            # With TLS 1.3 the client finishes its handshake before the server has checked the
            # client certificate: the refusal then arrives on the first read.
            with self.assertRaises((OSError, EOFError)) as cm:
                c.open()
                c.proxy.discover_versions()
            self.assertNotIsInstance(cm.exception, TimeoutError, "the server hung instead of refusing")
        finally:
            try:
                c.close()
            except Exception:
                pass

    def test_client_certificate_of_another_ca_is_refused(self):
        with open(CERT, "rb") as f:
            cn = x509.load_pem_x509_certificate(f.read()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        cert, key = _foreign_client_certificate(_tmp.name, cn)  # the legitimate client's name
        self.assertTlsRefused(cert, key)
        self.assertWorks()

    def test_no_client_certificate_is_refused(self):
        self.assertTlsRefused(None, None)
        self.assertWorks()

    def _malformed(self, data):
        with tls_socket() as s:
            try:
                s.sendall(data)
            except (ConnectionError, ssl.SSLError):
                resp = None  # closed while we were still sending
            else:
                resp = read_message(s)
        if resp is not None:
            (msg,) = ttlv_decode(resp)
            self.assertEqual(msg[0], T.RESPONSE_MESSAGE.value, "answer is not a Response Message")
            status, reason, text, _ = batch_result(msg)
            self.assertEqual(status, enums.ResultStatus.OPERATION_FAILED, (reason, text))
        self.assertWorks()

    def test_garbage_bytes(self):
        # Tag 0xDEADBE is outside both tag ranges: refusable from the first 8 bytes.
        self._malformed(b"\xde\xad\xbe\xef" * 8 + os.urandom(32))

    def test_header_announcing_100_mib(self):
        header = struct.pack(">I", T.REQUEST_MESSAGE.value)[1:] + bytes([STRUCTURE]) + struct.pack(">I", 100 << 20)
        self._malformed(header + t_struct(T.REQUEST_HEADER, t_int(T.BATCH_COUNT, 1)))

    def test_structure_nested_100_deep(self):
        inner = b""
        for _ in range(97):  # Request Message > Batch Item > Request Payload > 97 Attributes
            inner = t_struct(T.ATTRIBUTE, inner)
        major, minor = WIRE_VERSION[V14]
        msg = t_struct(
            T.REQUEST_MESSAGE,
            t_struct(T.REQUEST_HEADER, t_struct(T.PROTOCOL_VERSION, t_int(T.PROTOCOL_VERSION_MAJOR, major),
                                                t_int(T.PROTOCOL_VERSION_MINOR, minor)), t_int(T.BATCH_COUNT, 1)),
            t_struct(T.BATCH_ITEM, t_enum(T.OPERATION, enums.Operation.LOCATE), t_struct(T.REQUEST_PAYLOAD, inner)))
        self._malformed(msg)

    def test_extra_client_certificate(self):
        cert, key = os.environ.get("KMIP_EXTRA_CERT"), os.environ.get("KMIP_EXTRA_KEY")
        if not cert or not key:
            self.skipTest("KMIP_EXTRA_CERT/KMIP_EXTRA_KEY not set")
        c = self.client(cert=cert, key=key, ca=os.environ.get("KMIP_EXTRA_CA") or CA)
        name = self.name("extra-client")
        uid = self.create_aes(c, name=name, activate=True)
        self.assertEqual(self.attrs(c, uid, ["Name", "State"]), {"Name": [name], "State": [State.ACTIVE]})
        pt = plaintext("second client")
        iv = os.urandom(16)
        ct, _ = c.encrypt(pt, uid, CBC, iv)
        self.assertEqual(c.decrypt(ct, uid, CBC, iv), pt)


if __name__ == "__main__":
    unittest.main(warnings="ignore")  # PyKMIP 0.10 uses the deprecated ssl.wrap_socket
