"""Conformance of custos's KMS API with boto3 (AWS SDK for Python).

Run by tests/conformance/run.sh, which starts a dev server and exports:
  CUSTOS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION  (the dev principal)
  CONF_A_ACCESS_KEY_ID, CONF_A_SECRET_ACCESS_KEY, CONF_A_PRINCIPAL_ARN  (a second principal)
  CONF_B_ACCESS_KEY_ID, CONF_B_SECRET_ACCESS_KEY, CONF_B_PRINCIPAL_ARN  (a third principal)
Alone: `tests/conformance/run.sh build/custos boto3`. The tests run in the order written
(unittest sorts by name, hence the numbered names) and stop at the first failure (-f).

Every call goes through call()/expect_error(), so a failure names the operation, the request
and what came back.
"""
import base64
import datetime
import hashlib
import json
import os
import sys
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def _client_kms_model_has(op):
    import botocore.session
    return op in botocore.session.get_session().get_service_model("kms").operation_names


# Debian 12's botocore (1.29) predates RotateKeyOnDemand and ListKeyRotations: teach it the two
# operations with the model extras file beside this test (botocore merges *.sdk-extras.json from
# AWS_DATA_PATH into its own model). Newer botocore has them and is left alone.
if not _client_kms_model_has("RotateKeyOnDemand"):
    paths = [os.path.join(HERE, "models")]
    if os.environ.get("AWS_DATA_PATH"):
        paths.append(os.environ["AWS_DATA_PATH"])
    os.environ["AWS_DATA_PATH"] = os.pathsep.join(paths)

import boto3  # noqa: E402
import botocore  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from cryptography.exceptions import InvalidSignature
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
    HAVE_CRYPTOGRAPHY = False

ENDPOINT = os.environ.get("CUSTOS_ENDPOINT", "")
REGION = os.environ.get("AWS_REGION", "us-east-1")
RUN = uuid.uuid4().hex[:8]  # keeps alias names unique when suites share one server


def make_client(access_key_id, secret_access_key):
    return boto3.client(
        "kms",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=5, read_timeout=60),
    )


def short(obj, limit=1500):
    """A printable request/response: blobs as base64, datetimes as ISO, cut at `limit`."""
    def conv(o):
        if isinstance(o, (bytes, bytearray)):
            return "b64:" + base64.b64encode(bytes(o)).decode()
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [conv(v) for v in o]
        return o
    text = json.dumps(conv(obj), sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "...(cut)"


def snake(op):
    out = ""
    for i, ch in enumerate(op):
        if ch.isupper() and i and not op[i - 1].isupper():
            out += "_"
        out += ch.lower()
    return out


def call(client, op, **params):
    """Calls KMS `op`; any error fails the test with the operation, request and error."""
    try:
        resp = getattr(client, snake(op))(**params)
    except ClientError as e:
        err = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise AssertionError(f"{op} failed: HTTP {status} {err.get('Code')}: {err.get('Message')}\n"
                             f"  request: {short(params)}") from None
    except botocore.exceptions.BotoCoreError as e:
        raise AssertionError(f"{op} failed in the client: {type(e).__name__}: {e}\n"
                             f"  request: {short(params)}") from None
    resp.pop("ResponseMetadata", None)
    return resp


def expect_error(client, op, code, **params):
    """Calls `op` and asserts it fails with AWS error `code` (and boto3's modeled class for it,
    when the KMS model has one). Returns the ClientError."""
    try:
        resp = getattr(client, snake(op))(**params)
    except ClientError as e:
        err = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = (f"{op}: expected {code}, got HTTP {status} {err.get('Code')}: {err.get('Message')}\n"
                  f"  request: {short(params)}")
        if err.get("Code") != code:
            raise AssertionError(detail) from None
        modeled = getattr(client.exceptions, code, None)
        if modeled is not None and not isinstance(e, modeled):
            raise AssertionError(detail + f"\n  boto3 raised {type(e).__name__}, not {code}") from None
        if status is None or not 400 <= status < 500:
            raise AssertionError(detail + "\n  expected an HTTP 4xx status") from None
        return e
    resp.pop("ResponseMetadata", None)
    raise AssertionError(f"{op}: expected {code}, but it succeeded\n  request: {short(params)}\n"
                         f"  response: {short(resp)}")


class Env:
    """Clients and keys shared by the test classes (created once)."""
    main = None
    a = None  # principal A
    b = None  # principal B
    a_arn = None
    b_arn = None
    keys = {}

    @classmethod
    def setup(cls):
        if cls.main is not None:
            return
        missing = [v for v in ("CUSTOS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                               "CONF_A_ACCESS_KEY_ID", "CONF_A_SECRET_ACCESS_KEY", "CONF_A_PRINCIPAL_ARN",
                               "CONF_B_ACCESS_KEY_ID", "CONF_B_SECRET_ACCESS_KEY", "CONF_B_PRINCIPAL_ARN")
                   if not os.environ.get(v)]
        if missing:
            raise RuntimeError("not set (run through tests/conformance/run.sh): " + " ".join(missing))
        cls.main = make_client(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        cls.a = make_client(os.environ["CONF_A_ACCESS_KEY_ID"], os.environ["CONF_A_SECRET_ACCESS_KEY"])
        cls.b = make_client(os.environ["CONF_B_ACCESS_KEY_ID"], os.environ["CONF_B_SECRET_ACCESS_KEY"])
        cls.a_arn = os.environ["CONF_A_PRINCIPAL_ARN"]
        cls.b_arn = os.environ["CONF_B_PRINCIPAL_ARN"]

    @classmethod
    def key(cls, name, **params):
        """The key `name` (KEYS says how to make it, else `params`), created on first use by
        the dev principal; returns its KeyMetadata. Test classes may run alone."""
        if name not in cls.keys:
            cls.keys[name] = call(cls.main, "CreateKey", **(params or KEYS.get(name, {})))["KeyMetadata"]
        return cls.keys[name]


KEYS = {
    "sym": dict(Description="conformance symmetric key",
                Tags=[{"TagKey": "suite", "TagValue": "boto3"}, {"TagKey": "purpose", "TagValue": "test"}]),
    "hmac": dict(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC", Description="conformance hmac"),
    "ecc": dict(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"),
    "alias2": dict(Description="alias target 2"),
    "toggle": dict(Description="enable/disable"),
    "doomed": dict(Description="deletion"),
    "rot": dict(Description="rotation"),
}


def arn_parts(arn):
    parts = arn.split(":", 5)
    assert len(parts) == 6 and parts[0] == "arn" and parts[2] == "kms", arn
    return parts  # arn, aws, kms, region, account, key/ID


class Base(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        Env.setup()
        cls.kms = Env.main

    def assert_key_arn(self, value, key_id):
        parts = arn_parts(value)
        self.assertEqual(parts[3], REGION, value)
        self.assertRegex(parts[4], r"^\d{12}$", value)
        self.assertEqual(parts[5], "key/" + key_id, value)


class T01Keys(Base):
    def test_01_create_symmetric(self):
        md = Env.key("sym")
        ctx = f"CreateKey response: {short(md)}"
        self.assertRegex(md.get("KeyId"), r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", ctx)
        self.assert_key_arn(md.get("Arn"), md.get("KeyId"))
        self.assertEqual(md.get("KeyState"), "Enabled", ctx)
        self.assertTrue(md.get("Enabled"), ctx)
        self.assertEqual(md.get("KeyUsage"), "ENCRYPT_DECRYPT", ctx)
        self.assertEqual(md.get("KeySpec"), "SYMMETRIC_DEFAULT", ctx)
        self.assertEqual(md.get("Description"), "conformance symmetric key", ctx)
        self.assertEqual(md.get("EncryptionAlgorithms"), ["SYMMETRIC_DEFAULT"], ctx)
        self.assertEqual(md.get("Origin"), "AWS_KMS", ctx)
        self.assertEqual(md.get("KeyManager"), "CUSTOMER", ctx)
        self.assertIsInstance(md.get("CreationDate"), datetime.datetime, ctx)
        self.assertEqual(md.get("AWSAccountId"), arn_parts(md.get("Arn"))[4], ctx)

    def test_02_create_hmac(self):
        md = Env.key("hmac")
        ctx = f"CreateKey response: {short(md)}"
        self.assertEqual(md.get("KeySpec"), "HMAC_256", ctx)
        self.assertEqual(md.get("KeyUsage"), "GENERATE_VERIFY_MAC", ctx)
        self.assertEqual(md.get("MacAlgorithms"), ["HMAC_SHA_256"], ctx)
        self.assertEqual(md.get("KeyState"), "Enabled", ctx)

    def test_03_create_ecc(self):
        md = Env.key("ecc")
        ctx = f"CreateKey response: {short(md)}"
        self.assertEqual(md.get("KeySpec"), "ECC_NIST_P256", ctx)
        self.assertEqual(md.get("KeyUsage"), "SIGN_VERIFY", ctx)
        self.assertEqual(md.get("SigningAlgorithms"), ["ECDSA_SHA_256"], ctx)

    def test_04_create_with_policy(self):
        account = arn_parts(Env.key("sym")["Arn"])[4]
        policy = {
            "Version": "2012-10-17",
            "Id": "conformance-create",
            "Statement": [{
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }],
        }
        md = Env.key("withpolicy", Policy=json.dumps(policy), Description="with policy",
                     Tags=[{"TagKey": "k1", "TagValue": "v1"}])
        got = call(self.kms, "GetKeyPolicy", KeyId=md["KeyId"], PolicyName="default")
        self.assertEqual(json.loads(got.get("Policy")), policy, f"GetKeyPolicy response: {short(got)}")
        tags = call(self.kms, "ListResourceTags", KeyId=md["KeyId"])
        self.assertEqual(tags["Tags"], [{"TagKey": "k1", "TagValue": "v1"}], short(tags))

    def test_05_describe_by_id_and_arn(self):
        md = Env.key("sym")
        for ref in (md["KeyId"], md["Arn"]):
            got = call(self.kms, "DescribeKey", KeyId=ref)["KeyMetadata"]
            self.assertEqual(got.get("KeyId"), md.get("KeyId"), f"DescribeKey({ref}): {short(got)}")
            self.assertEqual(got.get("Arn"), md.get("Arn"), short(got))
            self.assertEqual(got.get("Description"), "conformance symmetric key", short(got))

    def test_06_list_keys_paginated(self):
        mine = {Env.key(n)["KeyId"] for n in ("sym", "hmac", "ecc", "withpolicy")}
        seen, marker, pages = [], None, 0
        while True:
            params = {"Limit": 2}
            if marker:
                params["Marker"] = marker
            page = call(self.kms, "ListKeys", **params)
            pages += 1
            self.assertLessEqual(len(page["Keys"]), 2, f"ListKeys {short(params)}: {short(page)}")
            for k in page["Keys"]:
                self.assert_key_arn(k.get("KeyArn"), k.get("KeyId"))
                seen.append(k["KeyId"])
            if not page.get("Truncated"):
                break
            self.assertTrue(page.get("NextMarker"), f"ListKeys Truncated without NextMarker: {short(page)}")
            marker = page["NextMarker"]
            self.assertLess(pages, 1000, "ListKeys does not end")
        self.assertGreaterEqual(pages, 2, "4+ keys with Limit 2 must take 2+ pages")
        self.assertEqual(len(seen), len(set(seen)), f"ListKeys pages repeat keys: {seen}")
        self.assertTrue(mine <= set(seen), f"ListKeys misses {mine - set(seen)}")
        # One page with no Limit lists them all (default Limit 100 > the keys of this run).
        everything = call(self.kms, "ListKeys")
        self.assertTrue(mine <= {k.get("KeyId") for k in everything["Keys"]}, short(everything))

    def test_07_enable_disable(self):
        md = Env.key("toggle")
        call(self.kms, "DisableKey", KeyId=md["KeyId"])
        got = call(self.kms, "DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
        self.assertEqual((got.get("KeyState"), got.get("Enabled")), ("Disabled", False), short(got))
        expect_error(self.kms, "Encrypt", "DisabledException", KeyId=md["KeyId"], Plaintext=b"x")
        call(self.kms, "EnableKey", KeyId=md["KeyId"])
        got = call(self.kms, "DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
        self.assertEqual((got.get("KeyState"), got.get("Enabled")), ("Enabled", True), short(got))
        call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=b"x")

    def test_08_schedule_and_cancel_deletion(self):
        md = Env.key("doomed")
        expect_error(self.kms, "ScheduleKeyDeletion", "ValidationException", KeyId=md["KeyId"], PendingWindowInDays=3)
        expect_error(self.kms, "ScheduleKeyDeletion", "ValidationException", KeyId=md["KeyId"], PendingWindowInDays=31)
        before = datetime.datetime.now(datetime.timezone.utc)
        resp = call(self.kms, "ScheduleKeyDeletion", KeyId=md["KeyId"], PendingWindowInDays=7)
        ctx = f"ScheduleKeyDeletion response: {short(resp)}"
        self.assertEqual(resp.get("KeyId"), md.get("Arn"), ctx)
        self.assertEqual(resp.get("KeyState"), "PendingDeletion", ctx)
        self.assertEqual(resp.get("PendingWindowInDays"), 7, ctx)
        days = (resp["DeletionDate"] - before).total_seconds() / 86400
        self.assertTrue(6 <= days <= 8, ctx)
        got = call(self.kms, "DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
        self.assertEqual(got.get("KeyState"), "PendingDeletion", short(got))
        self.assertFalse(got.get("Enabled"), short(got))
        self.assertEqual(got.get("DeletionDate"), resp.get("DeletionDate"), short(got))
        expect_error(self.kms, "Encrypt", "KMSInvalidStateException", KeyId=md["KeyId"], Plaintext=b"x")
        expect_error(self.kms, "EnableKey", "KMSInvalidStateException", KeyId=md["KeyId"])
        expect_error(self.kms, "ScheduleKeyDeletion", "KMSInvalidStateException", KeyId=md["KeyId"],
                     PendingWindowInDays=7)
        resp = call(self.kms, "CancelKeyDeletion", KeyId=md["KeyId"])
        self.assertEqual(resp.get("KeyId"), md.get("Arn"), f"CancelKeyDeletion response: {short(resp)}")
        got = call(self.kms, "DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
        self.assertEqual(got.get("KeyState"), "Disabled", f"after CancelKeyDeletion (AWS leaves it Disabled): {short(got)}")
        self.assertNotIn("DeletionDate", got, short(got))
        call(self.kms, "EnableKey", KeyId=md["KeyId"])
        # The 30-day upper bound is accepted too; the key stays pending for the rest of the run.
        resp = call(self.kms, "ScheduleKeyDeletion", KeyId=md["KeyId"], PendingWindowInDays=30)
        days = (resp["DeletionDate"] - before).total_seconds() / 86400
        self.assertTrue(29 <= days <= 31, short(resp))


class T02Aliases(Base):
    def test_01_aliases(self):
        k1, k2 = Env.key("sym"), Env.key("alias2")
        name = f"alias/conformance-boto3-{RUN}"
        call(self.kms, "CreateAlias", AliasName=name, TargetKeyId=k1["KeyId"])
        expect_error(self.kms, "CreateAlias", "AlreadyExistsException", AliasName=name, TargetKeyId=k2["KeyId"])
        alias_arn = f"arn:aws:kms:{REGION}:{arn_parts(k1['Arn'])[4]}:{name}"
        for ref in (name, alias_arn):
            got = call(self.kms, "DescribeKey", KeyId=ref)["KeyMetadata"]
            self.assertEqual(got.get("KeyId"), k1["KeyId"], f"DescribeKey({ref}): {short(got)}")
        ct = call(self.kms, "Encrypt", KeyId=name, Plaintext=b"via alias")
        self.assertEqual(ct["KeyId"], k1["Arn"], short(ct))

        listed = call(self.kms, "ListAliases")
        entry = [a for a in listed["Aliases"] if a["AliasName"] == name]
        self.assertEqual(len(entry), 1, f"ListAliases: {short(listed)}")
        self.assertEqual(entry[0].get("AliasArn"), alias_arn, short(entry))
        self.assertEqual(entry[0].get("TargetKeyId"), k1["KeyId"], short(entry))
        for a in listed["Aliases"]:
            self.assertTrue(a.get("AliasName").startswith("alias/"), short(a))

        only = call(self.kms, "ListAliases", KeyId=k1["KeyId"])
        self.assertEqual([a.get("AliasName") for a in only["Aliases"]], [name], f"ListAliases(KeyId): {short(only)}")
        none = call(self.kms, "ListAliases", KeyId=k2["KeyId"])
        self.assertEqual(none["Aliases"], [], f"ListAliases(KeyId) of a key without aliases: {short(none)}")

        call(self.kms, "UpdateAlias", AliasName=name, TargetKeyId=k2["KeyId"])
        got = call(self.kms, "DescribeKey", KeyId=name)["KeyMetadata"]
        self.assertEqual(got.get("KeyId"), k2["KeyId"], f"DescribeKey after UpdateAlias: {short(got)}")
        only = call(self.kms, "ListAliases", KeyId=k2["KeyId"])
        self.assertEqual([a.get("AliasName") for a in only["Aliases"]], [name], short(only))

        call(self.kms, "DeleteAlias", AliasName=name)
        expect_error(self.kms, "DescribeKey", "NotFoundException", KeyId=name)
        expect_error(self.kms, "DeleteAlias", "NotFoundException", AliasName=name)
        listed = call(self.kms, "ListAliases")
        self.assertFalse([a for a in listed["Aliases"] if a.get("AliasName") == name], short(listed))


class T03Crypto(Base):
    def test_01_encrypt_decrypt(self):
        md = Env.key("sym")
        plain = os.urandom(100)
        enc = call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=plain)
        self.assertEqual(enc.get("KeyId"), md.get("Arn"), f"Encrypt response: {short(enc)}")
        self.assertEqual(enc.get("EncryptionAlgorithm"), "SYMMETRIC_DEFAULT", short(enc))
        self.assertNotIn(plain, enc.get("CiphertextBlob"))
        dec = call(self.kms, "Decrypt", CiphertextBlob=enc["CiphertextBlob"])  # no KeyId
        self.assertEqual(dec.get("Plaintext"), plain, f"Decrypt response: {short(dec)}")
        self.assertEqual(dec.get("KeyId"), md.get("Arn"), short(dec))
        self.assertEqual(dec.get("EncryptionAlgorithm"), "SYMMETRIC_DEFAULT", short(dec))
        dec = call(self.kms, "Decrypt", CiphertextBlob=enc["CiphertextBlob"], KeyId=md["Arn"],
                   EncryptionAlgorithm="SYMMETRIC_DEFAULT")
        self.assertEqual(dec.get("Plaintext"), plain)
        # 4096 bytes is the documented maximum plaintext.
        big = os.urandom(4096)
        enc = call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=big)
        self.assertEqual(call(self.kms, "Decrypt", CiphertextBlob=enc.get("CiphertextBlob"))["Plaintext"], big)
        expect_error(self.kms, "Encrypt", "ValidationException", KeyId=md["KeyId"], Plaintext=big + b"!")

    def test_02_encryption_context(self):
        md = Env.key("sym")
        ctx = {"project": "alpha", "purpose": "conformance"}
        enc = call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=b"secret", EncryptionContext=ctx)
        dec = call(self.kms, "Decrypt", CiphertextBlob=enc["CiphertextBlob"],
                   EncryptionContext={"purpose": "conformance", "project": "alpha"})
        self.assertEqual(dec.get("Plaintext"), b"secret")
        expect_error(self.kms, "Decrypt", "InvalidCiphertextException", CiphertextBlob=enc["CiphertextBlob"],
                     EncryptionContext={"project": "beta", "purpose": "conformance"})
        expect_error(self.kms, "Decrypt", "InvalidCiphertextException", CiphertextBlob=enc["CiphertextBlob"])
        plain_enc = call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=b"secret")
        expect_error(self.kms, "Decrypt", "InvalidCiphertextException", CiphertextBlob=plain_enc["CiphertextBlob"],
                     EncryptionContext=ctx)

    def test_03_tampered_ciphertext(self):
        md = Env.key("sym")
        blob = call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=b"do not touch")["CiphertextBlob"]
        for pos in (len(blob) - 1, len(blob) - 17):  # the tag, the ciphertext's last byte
            bad = bytearray(blob)
            bad[pos] ^= 0x01
            expect_error(self.kms, "Decrypt", "InvalidCiphertextException", CiphertextBlob=bytes(bad))
        expect_error(self.kms, "Decrypt", "InvalidCiphertextException", CiphertextBlob=blob[:-20])
        expect_error(self.kms, "Decrypt", "InvalidCiphertextException", CiphertextBlob=b"not a kms ciphertext")
        expect_error(self.kms, "Decrypt", "InvalidCiphertextException", CiphertextBlob=os.urandom(200))

    def test_04_incorrect_key(self):
        k1, k2 = Env.key("sym"), Env.key("alias2")
        blob = call(self.kms, "Encrypt", KeyId=k1["KeyId"], Plaintext=b"k1")["CiphertextBlob"]
        expect_error(self.kms, "Decrypt", "IncorrectKeyException", CiphertextBlob=blob, KeyId=k2["KeyId"])

    def test_05_reencrypt(self):
        k1, k2 = Env.key("sym"), Env.key("alias2")
        enc = call(self.kms, "Encrypt", KeyId=k1["KeyId"], Plaintext=b"move me", EncryptionContext={"a": "1"})
        re = call(self.kms, "ReEncrypt", CiphertextBlob=enc["CiphertextBlob"], SourceEncryptionContext={"a": "1"},
                  DestinationKeyId=k2["KeyId"], DestinationEncryptionContext={"b": "2"})
        ctx = f"ReEncrypt response: {short(re)}"
        self.assertEqual(re.get("SourceKeyId"), k1["Arn"], ctx)
        self.assertEqual(re.get("KeyId"), k2["Arn"], ctx)
        self.assertEqual(re.get("SourceEncryptionAlgorithm"), "SYMMETRIC_DEFAULT", ctx)
        self.assertEqual(re.get("DestinationEncryptionAlgorithm"), "SYMMETRIC_DEFAULT", ctx)
        dec = call(self.kms, "Decrypt", CiphertextBlob=re["CiphertextBlob"], EncryptionContext={"b": "2"})
        self.assertEqual((dec.get("Plaintext"), dec.get("KeyId")), (b"move me", k2["Arn"]), short(dec))
        expect_error(self.kms, "ReEncrypt", "InvalidCiphertextException", CiphertextBlob=enc["CiphertextBlob"],
                     DestinationKeyId=k2["KeyId"])

    def test_06_generate_data_key(self):
        md = Env.key("sym")
        dk = call(self.kms, "GenerateDataKey", KeyId=md["KeyId"], KeySpec="AES_256")
        self.assertEqual(len(dk["Plaintext"]), 32, short(dk))
        self.assertEqual(dk.get("KeyId"), md.get("Arn"), short(dk))
        dec = call(self.kms, "Decrypt", CiphertextBlob=dk["CiphertextBlob"])
        self.assertEqual(dec.get("Plaintext"), dk.get("Plaintext"))
        dk128 = call(self.kms, "GenerateDataKey", KeyId=md["KeyId"], KeySpec="AES_128")
        self.assertEqual(len(dk128["Plaintext"]), 16, short(dk128))
        dk = call(self.kms, "GenerateDataKey", KeyId=md["KeyId"], NumberOfBytes=64, EncryptionContext={"f": "g"})
        self.assertEqual(len(dk["Plaintext"]), 64, short(dk))
        dec = call(self.kms, "Decrypt", CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"f": "g"})
        self.assertEqual(dec.get("Plaintext"), dk.get("Plaintext"))
        expect_error(self.kms, "GenerateDataKey", "ValidationException", KeyId=md["KeyId"])  # neither spec nor bytes
        expect_error(self.kms, "GenerateDataKey", "ValidationException", KeyId=md["KeyId"], NumberOfBytes=2000)

    def test_07_generate_data_key_without_plaintext(self):
        md = Env.key("sym")
        dk = call(self.kms, "GenerateDataKeyWithoutPlaintext", KeyId=md["KeyId"], KeySpec="AES_256",
                  EncryptionContext={"x": "y"})
        self.assertNotIn("Plaintext", dk, short(dk))
        self.assertEqual(dk.get("KeyId"), md.get("Arn"), short(dk))
        dec = call(self.kms, "Decrypt", CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"x": "y"})
        self.assertEqual(len(dec["Plaintext"]), 32, short(dec))

    def test_08_generate_random(self):
        r1 = call(self.kms, "GenerateRandom", NumberOfBytes=32)["Plaintext"]
        r2 = call(self.kms, "GenerateRandom", NumberOfBytes=32)["Plaintext"]
        self.assertEqual((len(r1), len(r2)), (32, 32))
        self.assertNotEqual(r1, r2)
        self.assertEqual(len(call(self.kms, "GenerateRandom", NumberOfBytes=1024)["Plaintext"]), 1024)
        # boto3 refuses NumberOfBytes 0 itself (the model's min is 1); the max is the server's.
        expect_error(self.kms, "GenerateRandom", "ValidationException", NumberOfBytes=2000)

    def test_09_not_found(self):
        unknown = str(uuid.uuid4())
        expect_error(self.kms, "DescribeKey", "NotFoundException", KeyId=unknown)
        expect_error(self.kms, "Encrypt", "NotFoundException", KeyId=unknown, Plaintext=b"x")
        expect_error(self.kms, "DescribeKey", "NotFoundException", KeyId=f"alias/does-not-exist-{RUN}")

    def test_10_invalid_key_usage(self):
        expect_error(self.kms, "Sign", "InvalidKeyUsageException", KeyId=Env.key("sym")["KeyId"], Message=b"m",
                     MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
        expect_error(self.kms, "Encrypt", "InvalidKeyUsageException", KeyId=Env.key("hmac")["KeyId"], Plaintext=b"m")
        expect_error(self.kms, "GenerateMac", "InvalidKeyUsageException", KeyId=Env.key("sym")["KeyId"],
                     Message=b"m", MacAlgorithm="HMAC_SHA_256")


class T04Rotation(Base):
    def test_01_rotation_status(self):
        md = Env.key("rot")
        st = call(self.kms, "GetKeyRotationStatus", KeyId=md["KeyId"])
        self.assertFalse(st.get("KeyRotationEnabled"), short(st))
        call(self.kms, "EnableKeyRotation", KeyId=md["KeyId"])
        st = call(self.kms, "GetKeyRotationStatus", KeyId=md["KeyId"])
        self.assertTrue(st.get("KeyRotationEnabled"), short(st))
        call(self.kms, "DisableKeyRotation", KeyId=md["KeyId"])
        st = call(self.kms, "GetKeyRotationStatus", KeyId=md["KeyId"])
        self.assertFalse(st.get("KeyRotationEnabled"), short(st))
        expect_error(self.kms, "EnableKeyRotation", "UnsupportedOperationException", KeyId=Env.key("ecc")["KeyId"])

    def test_02_rotate_on_demand(self):
        md = Env.key("rot")
        listed = call(self.kms, "ListKeyRotations", KeyId=md["KeyId"])
        self.assertEqual(listed.get("Rotations", []), [], f"ListKeyRotations before any: {short(listed)}")
        old = call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=b"before rotation", EncryptionContext={"r": "1"})
        resp = call(self.kms, "RotateKeyOnDemand", KeyId=md["KeyId"])
        self.assertIn(resp.get("KeyId"), (md.get("KeyId"), md.get("Arn")), f"RotateKeyOnDemand response: {short(resp)}")
        # AWS rotates asynchronously: wait up to 10 s for the rotation to be listed.
        deadline = time.time() + 10
        while True:
            listed = call(self.kms, "ListKeyRotations", KeyId=md["KeyId"])
            if listed.get("Rotations") or time.time() > deadline:
                break
            time.sleep(0.5)
        rot = listed.get("Rotations", [])
        self.assertEqual(len(rot), 1, f"ListKeyRotations after one rotation: {short(listed)}")
        self.assertEqual(rot[0].get("RotationType"), "ON_DEMAND", short(listed))
        self.assertIsInstance(rot[0].get("RotationDate"), datetime.datetime, short(listed))
        self.assertIn(rot[0].get("KeyId"), (md.get("KeyId"), md.get("Arn")), short(listed))
        dec = call(self.kms, "Decrypt", CiphertextBlob=old["CiphertextBlob"], EncryptionContext={"r": "1"})
        self.assertEqual(dec.get("Plaintext"), b"before rotation", "ciphertext from before a rotation")
        new = call(self.kms, "Encrypt", KeyId=md["KeyId"], Plaintext=b"after rotation")
        self.assertNotEqual(new["CiphertextBlob"], old["CiphertextBlob"])
        self.assertEqual(call(self.kms, "Decrypt", CiphertextBlob=new["CiphertextBlob"])["Plaintext"], b"after rotation")
        # A second rotation, then list page by page.
        call(self.kms, "RotateKeyOnDemand", KeyId=md["KeyId"])
        deadline = time.time() + 10
        while len(call(self.kms, "ListKeyRotations", KeyId=md["KeyId"]).get("Rotations", [])) < 2:
            self.assertLess(time.time(), deadline, "second rotation never listed")
            time.sleep(0.5)
        page = call(self.kms, "ListKeyRotations", KeyId=md["KeyId"], Limit=1)
        self.assertEqual(len(page["Rotations"]), 1, short(page))
        self.assertTrue(page.get("Truncated") and page.get("NextMarker"), short(page))
        page2 = call(self.kms, "ListKeyRotations", KeyId=md["KeyId"], Limit=1, Marker=page["NextMarker"])
        self.assertEqual(len(page2["Rotations"]), 1, short(page2))
        self.assertFalse(page2.get("Truncated"), short(page2))
        self.assertEqual(call(self.kms, "Decrypt", CiphertextBlob=old["CiphertextBlob"],
                              EncryptionContext={"r": "1"})["Plaintext"], b"before rotation")
        expect_error(self.kms, "RotateKeyOnDemand", "UnsupportedOperationException", KeyId=Env.key("hmac")["KeyId"])


class T05Asymmetric(Base):
    def test_01_sign_verify(self):
        md = Env.key("ecc")
        pub = call(self.kms, "GetPublicKey", KeyId=md["KeyId"])
        ctx = f"GetPublicKey response: {short(pub)}"
        self.assertEqual(pub.get("KeyId"), md.get("Arn"), ctx)
        self.assertEqual(pub.get("KeySpec"), "ECC_NIST_P256", ctx)
        self.assertEqual(pub.get("KeyUsage"), "SIGN_VERIFY", ctx)
        self.assertEqual(pub.get("SigningAlgorithms"), ["ECDSA_SHA_256"], ctx)
        msg = b"conformance message " + os.urandom(16)
        digest = hashlib.sha256(msg).digest()
        raw = call(self.kms, "Sign", KeyId=md["KeyId"], Message=msg, MessageType="RAW",
                   SigningAlgorithm="ECDSA_SHA_256")
        self.assertEqual(raw.get("KeyId"), md.get("Arn"), short(raw))
        self.assertEqual(raw.get("SigningAlgorithm"), "ECDSA_SHA_256", short(raw))
        self.assertEqual(raw.get("Signature")[0], 0x30, f"Signature is not DER: {short(raw)}")
        dig = call(self.kms, "Sign", KeyId=md["KeyId"], Message=digest, MessageType="DIGEST",
                   SigningAlgorithm="ECDSA_SHA_256")
        for sig in (raw["Signature"], dig["Signature"]):
            for mt, m in (("RAW", msg), ("DIGEST", digest)):
                v = call(self.kms, "Verify", KeyId=md["KeyId"], Message=m, MessageType=mt, Signature=sig,
                         SigningAlgorithm="ECDSA_SHA_256")
                self.assertTrue(v.get("SignatureValid"), short(v))
                self.assertEqual(v.get("KeyId"), md.get("Arn"), short(v))
        expect_error(self.kms, "Verify", "KMSInvalidSignatureException", KeyId=md["KeyId"], Message=msg + b"!",
                     MessageType="RAW", Signature=raw["Signature"], SigningAlgorithm="ECDSA_SHA_256")
        expect_error(self.kms, "Sign", "ValidationException", KeyId=md["KeyId"], Message=b"short digest",
                     MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
        expect_error(self.kms, "Encrypt", "InvalidKeyUsageException", KeyId=md["KeyId"], Plaintext=b"x")
        if not HAVE_CRYPTOGRAPHY:
            print("\n  (python cryptography missing: signatures checked by the server only)", file=sys.stderr)
            return
        key = serialization.load_der_public_key(pub["PublicKey"])
        self.assertIsInstance(key, ec.EllipticCurvePublicKey, ctx)
        self.assertEqual(key.curve.name, "secp256r1", ctx)
        for sig in (raw["Signature"], dig["Signature"]):
            key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
            key.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        with self.assertRaises(InvalidSignature):
            key.verify(raw["Signature"], msg + b"!", ec.ECDSA(hashes.SHA256()))

    def test_02_mac(self):
        md = Env.key("hmac")
        msg = b"mac me"
        m1 = call(self.kms, "GenerateMac", KeyId=md["KeyId"], Message=msg, MacAlgorithm="HMAC_SHA_256")
        self.assertEqual(len(m1["Mac"]), 32, short(m1))
        self.assertIn(m1.get("KeyId"), (md["KeyId"], md["Arn"]), short(m1))
        self.assertEqual(m1.get("MacAlgorithm"), "HMAC_SHA_256", short(m1))
        m2 = call(self.kms, "GenerateMac", KeyId=md["KeyId"], Message=msg, MacAlgorithm="HMAC_SHA_256")
        self.assertEqual(m1.get("Mac"), m2["Mac"], "HMAC is deterministic")
        v = call(self.kms, "VerifyMac", KeyId=md["KeyId"], Message=msg, Mac=m1["Mac"], MacAlgorithm="HMAC_SHA_256")
        self.assertTrue(v.get("MacValid"), short(v))
        self.assertIn(v.get("KeyId"), (md["KeyId"], md["Arn"]), short(v))
        bad = bytearray(m1["Mac"])
        bad[0] ^= 1
        expect_error(self.kms, "VerifyMac", "KMSInvalidMacException", KeyId=md["KeyId"], Message=msg,
                     Mac=bytes(bad), MacAlgorithm="HMAC_SHA_256")
        expect_error(self.kms, "VerifyMac", "KMSInvalidMacException", KeyId=md["KeyId"], Message=msg + b"!",
                     Mac=m1["Mac"], MacAlgorithm="HMAC_SHA_256")


class T06TagsAndPolicy(Base):
    def test_01_tags(self):
        md = Env.key("sym")
        tags = call(self.kms, "ListResourceTags", KeyId=md["KeyId"])
        self.assertEqual(sorted((t["TagKey"], t["TagValue"]) for t in tags["Tags"]),
                         [("purpose", "test"), ("suite", "boto3")], f"tags from CreateKey: {short(tags)}")
        self.assertFalse(tags.get("Truncated"), short(tags))
        call(self.kms, "TagResource", KeyId=md["KeyId"],
             Tags=[{"TagKey": "team", "TagValue": "kms"}, {"TagKey": "suite", "TagValue": "boto3-updated"}])
        tags = call(self.kms, "ListResourceTags", KeyId=md["KeyId"])
        self.assertEqual(sorted((t["TagKey"], t["TagValue"]) for t in tags["Tags"]),
                         [("purpose", "test"), ("suite", "boto3-updated"), ("team", "kms")], short(tags))
        call(self.kms, "UntagResource", KeyId=md["KeyId"], TagKeys=["purpose", "team"])
        tags = call(self.kms, "ListResourceTags", KeyId=md["KeyId"])
        self.assertEqual(tags["Tags"], [{"TagKey": "suite", "TagValue": "boto3-updated"}], short(tags))
        expect_error(self.kms, "TagResource", "NotFoundException", KeyId=str(uuid.uuid4()),
                     Tags=[{"TagKey": "a", "TagValue": "b"}])

    def test_02_default_policy(self):
        md = Env.key("sym")
        got = call(self.kms, "GetKeyPolicy", KeyId=md["KeyId"], PolicyName="default")
        policy = json.loads(got["Policy"])
        account = arn_parts(md["Arn"])[4]
        stmts = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
        root = [s for s in stmts if s.get("Effect") == "Allow"
                and s.get("Principal", {}).get("AWS") in (f"arn:aws:iam::{account}:root", account)
                and s.get("Action") in ("kms:*", ["kms:*"])]
        self.assertTrue(root, f"default policy lacks account root kms:*: {got['Policy']}")

    def test_03_policy_restricts_to_one_principal(self):
        key = call(Env.a, "CreateKey", Description="only A")["KeyMetadata"]
        # Before: the default policy lets every principal of the account use it.
        blob = call(Env.b, "Encrypt", KeyId=key["KeyId"], Plaintext=b"b may")["CiphertextBlob"]
        policy = {"Version": "2012-10-17", "Statement": [
            {"Sid": "OnlyA", "Effect": "Allow", "Principal": {"AWS": Env.a_arn}, "Action": "kms:*", "Resource": "*"}]}
        call(Env.a, "PutKeyPolicy", KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(policy))
        got = call(Env.a, "GetKeyPolicy", KeyId=key["KeyId"], PolicyName="default")
        self.assertEqual(json.loads(got.get("Policy")), policy, short(got))
        expect_error(Env.b, "Encrypt", "AccessDeniedException", KeyId=key["KeyId"], Plaintext=b"b may not")
        expect_error(Env.b, "Decrypt", "AccessDeniedException", CiphertextBlob=blob)
        expect_error(Env.b, "DescribeKey", "AccessDeniedException", KeyId=key["KeyId"])
        expect_error(Env.b, "PutKeyPolicy", "AccessDeniedException", KeyId=key["KeyId"], PolicyName="default",
                     Policy=json.dumps({"Version": "2012-10-17", "Statement": [
                         {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]}))
        expect_error(self.kms, "Encrypt", "AccessDeniedException", KeyId=key["KeyId"], Plaintext=b"main may not")
        self.assertEqual(call(Env.a, "Decrypt", CiphertextBlob=blob)["Plaintext"], b"b may")
        call(Env.a, "Encrypt", KeyId=key["KeyId"], Plaintext=b"a may")
        expect_error(Env.a, "PutKeyPolicy", "MalformedPolicyDocumentException", KeyId=key["KeyId"],
                     PolicyName="default", Policy="{not json")

    def test_04_policy_encryption_context_condition(self):
        key = call(Env.a, "CreateKey", Description="context-bound")["KeyMetadata"]
        policy = {"Version": "2012-10-17", "Statement": [
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": Env.a_arn}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "UseInProjectAlpha", "Effect": "Allow", "Principal": {"AWS": Env.b_arn},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:project": "alpha"}}}]}
        call(Env.a, "PutKeyPolicy", KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(policy))
        ok = call(Env.b, "Encrypt", KeyId=key["KeyId"], Plaintext=b"alpha data", EncryptionContext={"project": "alpha"})
        dec = call(Env.b, "Decrypt", CiphertextBlob=ok["CiphertextBlob"], EncryptionContext={"project": "alpha"})
        self.assertEqual(dec.get("Plaintext"), b"alpha data")
        call(Env.b, "GenerateDataKey", KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"project": "alpha"})
        expect_error(Env.b, "Encrypt", "AccessDeniedException", KeyId=key["KeyId"], Plaintext=b"x",
                     EncryptionContext={"project": "beta"})
        expect_error(Env.b, "Encrypt", "AccessDeniedException", KeyId=key["KeyId"], Plaintext=b"x")
        expect_error(Env.b, "GenerateDataKey", "AccessDeniedException", KeyId=key["KeyId"], KeySpec="AES_256",
                     EncryptionContext={"project": "alpha2"})
        expect_error(Env.b, "DisableKey", "AccessDeniedException", KeyId=key["KeyId"])
        call(Env.a, "Encrypt", KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"project": "beta"})


class T07Auth(Base):
    def test_01_wrong_secret(self):
        secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        wrong = make_client(os.environ["AWS_ACCESS_KEY_ID"], secret[:-1] + ("A" if secret[-1] != "A" else "B"))
        expect_error(wrong, "ListKeys", "InvalidSignatureException")
        expect_error(wrong, "Encrypt", "InvalidSignatureException", KeyId=Env.key("sym")["KeyId"], Plaintext=b"x")

    def test_02_unknown_access_key(self):
        unknown = make_client("AKIA" + uuid.uuid4().hex[:16].upper(), os.environ["AWS_SECRET_ACCESS_KEY"])
        expect_error(unknown, "ListKeys", "UnrecognizedClientException")


if __name__ == "__main__":
    unittest.main(failfast=True, verbosity=2)
