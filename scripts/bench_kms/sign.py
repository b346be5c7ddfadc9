"""Signed KMS requests for scripts/bench_kms.sh.

  sign.py create-key                      CreateKey (boto3); prints the new KeyId
  sign.py sign SCENARIO KEY_ID PREFIX     signs one request; writes PREFIX.lua (for wrk),
                                          PREFIX.headers and PREFIX.body (for curl)
  sign.py check SCENARIO PREFIX RESPONSE  checks a response to PREFIX's request (boto3 Decrypt)

SCENARIO is encrypt64 (Encrypt of 64 random bytes), encrypt4k (Encrypt of 4 KiB), gdk
(GenerateDataKey, KeySpec AES_256), decrypt64 (Decrypt of a ciphertext of 64 random bytes,
made with boto3 just before signing) or xks64 (the XKS proxy API's Encrypt of 64 random bytes,
as AWS KMS sends it: service kms-xks-proxy, the dev server's XKS credential and URI prefix from
CUSTOS_XKS_ENDPOINT, CUSTOS_XKS_URI_PREFIX, CUSTOS_XKS_ACCESS_KEY_ID,
CUSTOS_XKS_SECRET_ACCESS_KEY). The endpoint and the credentials come from the dev server's
dev.env lines in the environment: CUSTOS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION.

SigV4 lets a signed request be sent again while its X-Amz-Date is within the server's clock-skew
window (5 minutes), so the load generator replays the one request signed here; the script signs
again before every run.
"""
import base64
import json
import os
import sys
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ENDPOINT = os.environ["CUSTOS_ENDPOINT"]
REGION = os.environ.get("AWS_REGION", "us-east-1")
CREDS = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
CONTENT_TYPE = "application/x-amz-json-1.1"


def client():
    return boto3.client(
        "kms", endpoint_url=ENDPOINT, region_name=REGION,
        aws_access_key_id=CREDS.access_key, aws_secret_access_key=CREDS.secret_key,
        config=Config(retries={"max_attempts": 1}))


def scenario_request(scenario, key_id):
    """(operation, JSON body) of a scenario."""
    if scenario == "encrypt64":
        return "Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(os.urandom(64)).decode()}
    if scenario == "encrypt4k":
        return "Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(os.urandom(4096)).decode()}
    if scenario == "gdk":
        return "GenerateDataKey", {"KeyId": key_id, "KeySpec": "AES_256"}
    if scenario == "xks64":
        return "XksEncrypt", {
            "requestMetadata": {"awsPrincipalArn": "arn:aws:iam::123456789012:user/bench",
                                "kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/" + key_id,
                                "kmsOperation": "GenerateDataKey", "kmsRequestId": "bench"},
            "plaintext": base64.b64encode(os.urandom(64)).decode(),
            "encryptionAlgorithm": "AES_GCM"}
    if scenario == "decrypt64":
        plain = os.urandom(64)
        blob = client().encrypt(KeyId=key_id, Plaintext=plain)["CiphertextBlob"]
        return "Decrypt", {"CiphertextBlob": base64.b64encode(blob).decode(),
                           "_expect": base64.b64encode(plain).decode()}
    raise SystemExit(f"unknown scenario {scenario!r} (encrypt64, encrypt4k, gdk, decrypt64)")


def lua_string(s):
    """s as a Lua string literal: printable ASCII kept, everything else as a decimal escape."""
    out = []
    for ch in s.encode():
        if 0x20 <= ch < 0x7F and ch not in (0x22, 0x5C):
            out.append(chr(ch))
        else:
            out.append("\\%03d" % ch)
    return '"' + "".join(out) + '"'


def sign(scenario, key_id, prefix):
    op, body = scenario_request(scenario, key_id)
    expect = body.pop("_expect", None)
    if expect is not None:
        with open(prefix + ".expect", "w") as f:
            f.write(expect)
    data = json.dumps(body, separators=(",", ":"))
    if scenario.startswith("xks"):
        endpoint = os.environ["CUSTOS_XKS_ENDPOINT"]
        path = os.environ["CUSTOS_XKS_URI_PREFIX"] + "/keys/" + key_id + "/encrypt"
        headers = {"Content-Type": "application/json"}
        creds = Credentials(os.environ["CUSTOS_XKS_ACCESS_KEY_ID"], os.environ["CUSTOS_XKS_SECRET_ACCESS_KEY"])
        service = "kms-xks-proxy"
    else:
        endpoint, path = ENDPOINT, "/"
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": "TrentService." + op}
        creds, service = CREDS, "kms"
    url = urlsplit(endpoint)
    headers["Host"] = url.netloc  # "127.0.0.1:PORT": what wrk and curl send as Host
    req = AWSRequest(method="POST", url=endpoint.rstrip("/") + path, data=data.encode(), headers=headers)
    SigV4Auth(creds, service, REGION).add_auth(req)
    headers = {k: v for k, v in req.headers.items()}
    if isinstance(headers.get("Authorization"), bytes):
        headers["Authorization"] = headers["Authorization"].decode()
    for name in ("Authorization", "X-Amz-Date", "Host"):
        if name not in headers:
            raise SystemExit(f"botocore did not produce a {name} header")
    with open(prefix + ".lua", "w") as f:
        f.write("-- generated by scripts/bench_kms/sign.py; signed at " + headers["X-Amz-Date"] + "\n")
        f.write("return {\n  method = \"POST\",\n  path = " + lua_string(path) + ",\n  headers = {\n")
        for k, v in headers.items():
            f.write(f"    [{lua_string(k)}] = {lua_string(str(v))},\n")
        f.write("  },\n  body = " + lua_string(data) + ",\n}\n")
    with open(prefix + ".headers", "w") as f:
        for k, v in headers.items():
            f.write(f"{k}: {v}\n")
    with open(prefix + ".body", "w") as f:
        f.write(data)
    with open(prefix + ".url", "w") as f:
        f.write(endpoint.rstrip("/") + path)


def check(scenario, prefix, response_path):
    """The response is a real result for this request: Encrypt's ciphertext decrypts (boto3) to
    the plaintext that was sent, GenerateDataKey's ciphertext decrypts to its plaintext key."""
    sent = json.load(open(prefix + ".body"))
    got = json.load(open(response_path))
    if scenario == "decrypt64":
        want = open(prefix + ".expect").read()
        if got.get("Plaintext") != want:
            raise SystemExit(f"decrypt64: the response's Plaintext is not the encrypted one: {json.dumps(got)[:300]}")
        print("decrypt64: ok (Decrypt returns the 64-byte plaintext)")
        return
    if scenario == "xks64":
        for field, size in (("initializationVector", 12), ("authenticationTag", 16),
                            ("ciphertext", len(base64.b64decode(sent["plaintext"])))):
            if len(base64.b64decode(got.get(field, ""))) != size:
                raise SystemExit(f"xks64: {field} is not {size} bytes: {json.dumps(got)[:300]}")
        print("xks64: ok (12-byte IV, 16-byte tag, 64-byte ciphertext; tests/xks checks that it decrypts)")
        return
    if "CiphertextBlob" not in got:
        raise SystemExit(f"{scenario}: response has no CiphertextBlob: {json.dumps(got)[:300]}")
    blob = base64.b64decode(got["CiphertextBlob"])
    plain = client().decrypt(CiphertextBlob=blob)["Plaintext"]
    if scenario.startswith("encrypt"):
        want = base64.b64decode(sent["Plaintext"])
    else:
        want = base64.b64decode(got["Plaintext"])
        if len(want) != 32:
            raise SystemExit(f"gdk: data key is {len(want)} bytes, want 32")
    if plain != want:
        raise SystemExit(f"{scenario}: Decrypt of the response's CiphertextBlob does not give the expected plaintext")
    print(f"{scenario}: ok ({len(blob)}-byte ciphertext blob, decrypts to the {len(want)}-byte plaintext)")


def main(argv):
    if len(argv) >= 1 and argv[0] == "create-key":
        meta = client().create_key(Description="scripts/bench_kms.sh")["KeyMetadata"]
        print(meta["KeyId"])
    elif len(argv) == 4 and argv[0] == "sign":
        sign(argv[1], argv[2], argv[3])
    elif len(argv) == 4 and argv[0] == "check":
        check(argv[1], argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
