// Conformance of custos's KMS API with the AWS SDK for JavaScript v3 (@aws-sdk/client-kms).
//
// Run by tests/conformance/run.sh (alone: `tests/conformance/run.sh build/custos js`), which
// starts a dev server and exports CUSTOS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION and two more principals CONF_{A,B}_{ACCESS_KEY_ID,SECRET_ACCESS_KEY,PRINCIPAL_ARN}.
// The steps run in order; after the first failure the rest are skipped, and the failure names
// the operation, the request and the answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as kms from '@aws-sdk/client-kms';

const { KMSClient, KMSServiceException } = kms;
const REGION = process.env.AWS_REGION || 'us-east-1';
const RUN = crypto.randomBytes(4).toString('hex');
const enc = new TextEncoder();
const bytes = (s) => enc.encode(s);

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} not set (run through tests/conformance/run.sh)`);
  return v;
}

function makeClient(accessKeyId, secretAccessKey) {
  return new KMSClient({
    region: REGION,
    endpoint: need('CUSTOS_ENDPOINT'),
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });
}

// short renders a request or response for a failure message: blobs as base64, cut at 1500.
function short(obj) {
  const text = JSON.stringify(obj, (k, v) => {
    if (k === '$metadata') return undefined;
    if (v instanceof Uint8Array) return 'b64:' + Buffer.from(v).toString('base64');
    if (v && v.type === 'Buffer' && Array.isArray(v.data)) return 'b64:' + Buffer.from(v.data).toString('base64');
    return v;
  });
  return text && text.length > 1500 ? text.slice(0, 1500) + '...(cut)' : text;
}

async function call(client, op, input = {}) {
  const Command = kms[`${op}Command`];
  assert.ok(Command, `no ${op}Command in @aws-sdk/client-kms`);
  let out;
  try {
    out = await client.send(new Command(input));
  } catch (e) {
    const status = e.$metadata ? e.$metadata.httpStatusCode : undefined;
    throw new Error(`${op} failed: HTTP ${status} ${e.name}: ${e.message}\n  request: ${short(input)}`);
  }
  delete out.$metadata;
  return out;
}

// expectError asserts that `op` fails with AWS error `code`: the SDK's exception (its class
// when the KMS model has one, else a KMSServiceException named `code`), with an HTTP 4xx.
async function expectError(client, op, code, input = {}) {
  const Command = kms[`${op}Command`];
  let out;
  try {
    out = await client.send(new Command(input));
  } catch (e) {
    const status = e.$metadata ? e.$metadata.httpStatusCode : undefined;
    const detail = `${op}: expected ${code}, got HTTP ${status} ${e.name}: ${e.message}\n  request: ${short(input)}`;
    assert.equal(e.name, code, detail);
    assert.ok(e instanceof KMSServiceException, `${detail}\n  not a KMSServiceException`);
    if (typeof kms[code] === 'function') assert.ok(e instanceof kms[code], `${detail}\n  not an instance of ${code}`);
    assert.ok(status >= 400 && status < 500, `${detail}\n  expected an HTTP 4xx status`);
    return e;
  }
  delete out.$metadata;
  assert.fail(`${op}: expected ${code}, but it succeeded\n  request: ${short(input)}\n  response: ${short(out)}`);
}

// CONFORMANCE_NO_FAILFAST=1 runs every step even after a failure (later steps may then fail
// for the earlier one's reason).
let broken = null;
const failfast = process.env.CONFORMANCE_NO_FAILFAST !== '1';
function step(name, fn) {
  test(name, async (t) => {
    if (broken && failfast) {
      t.skip(`skipped after the failure of "${broken}"`);
      return;
    }
    try {
      await fn();
    } catch (e) {
      broken = name;
      throw e;
    }
  });
}

const eqBytes = (a, b) => Buffer.from(a).equals(Buffer.from(b));
const arnParts = (arn) => {
  const p = arn.split(':');
  assert.equal(p.length >= 6 && p[0] === 'arn' && p[2] === 'kms', true, `not a KMS ARN: ${arn}`);
  return { region: p[3], account: p[4], resource: p.slice(5).join(':') };
};

let main, a, b, aArn, bArn, account;
const keys = {};
async function key(name, input = {}) {
  if (!keys[name]) keys[name] = (await call(main, 'CreateKey', input)).KeyMetadata;
  return keys[name];
}

step('setup', async () => {
  main = makeClient(need('AWS_ACCESS_KEY_ID'), need('AWS_SECRET_ACCESS_KEY'));
  a = makeClient(need('CONF_A_ACCESS_KEY_ID'), need('CONF_A_SECRET_ACCESS_KEY'));
  b = makeClient(need('CONF_B_ACCESS_KEY_ID'), need('CONF_B_SECRET_ACCESS_KEY'));
  aArn = need('CONF_A_PRINCIPAL_ARN');
  bArn = need('CONF_B_PRINCIPAL_ARN');
});

step('CreateKey SYMMETRIC_DEFAULT with Description and Tags', async () => {
  const md = await key('sym', {
    Description: 'conformance symmetric key',
    Tags: [{ TagKey: 'suite', TagValue: 'js' }, { TagKey: 'purpose', TagValue: 'test' }],
  });
  const ctx = `CreateKey response: ${short(md)}`;
  assert.match(md.KeyId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, ctx);
  const p = arnParts(md.Arn);
  assert.equal(p.region, REGION, ctx);
  assert.match(p.account, /^\d{12}$/, ctx);
  assert.equal(p.resource, `key/${md.KeyId}`, ctx);
  account = p.account;
  assert.equal(md.AWSAccountId, account, ctx);
  assert.equal(md.KeyState, 'Enabled', ctx);
  assert.equal(md.Enabled, true, ctx);
  assert.equal(md.KeyUsage, 'ENCRYPT_DECRYPT', ctx);
  assert.equal(md.KeySpec, 'SYMMETRIC_DEFAULT', ctx);
  assert.equal(md.Description, 'conformance symmetric key', ctx);
  assert.deepEqual(md.EncryptionAlgorithms, ['SYMMETRIC_DEFAULT'], ctx);
  assert.equal(md.Origin, 'AWS_KMS', ctx);
  assert.equal(md.KeyManager, 'CUSTOMER', ctx);
  assert.ok(md.CreationDate instanceof Date && !isNaN(md.CreationDate), ctx);
});

step('CreateKey HMAC_256 GENERATE_VERIFY_MAC', async () => {
  const md = await key('hmac', { KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' });
  const ctx = `CreateKey response: ${short(md)}`;
  assert.equal(md.KeySpec, 'HMAC_256', ctx);
  assert.equal(md.KeyUsage, 'GENERATE_VERIFY_MAC', ctx);
  assert.deepEqual(md.MacAlgorithms, ['HMAC_SHA_256'], ctx);
});

step('CreateKey ECC_NIST_P256 SIGN_VERIFY', async () => {
  const md = await key('ecc', { KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
  const ctx = `CreateKey response: ${short(md)}`;
  assert.equal(md.KeySpec, 'ECC_NIST_P256', ctx);
  assert.equal(md.KeyUsage, 'SIGN_VERIFY', ctx);
  assert.deepEqual(md.SigningAlgorithms, ['ECDSA_SHA_256'], ctx);
});

step('CreateKey with Policy; GetKeyPolicy returns it', async () => {
  const policy = {
    Version: '2012-10-17',
    Id: 'conformance-create',
    Statement: [{
      Sid: 'Enable IAM User Permissions', Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*',
    }],
  };
  const md = await key('withpolicy', { Policy: JSON.stringify(policy), Tags: [{ TagKey: 'k1', TagValue: 'v1' }] });
  const got = await call(main, 'GetKeyPolicy', { KeyId: md.KeyId, PolicyName: 'default' });
  assert.deepEqual(JSON.parse(got.Policy), policy, short(got));
  const tags = await call(main, 'ListResourceTags', { KeyId: md.KeyId });
  assert.deepEqual(tags.Tags, [{ TagKey: 'k1', TagValue: 'v1' }], short(tags));
});

step('DescribeKey by key id and key ARN', async () => {
  const md = await key('sym');
  for (const ref of [md.KeyId, md.Arn]) {
    const got = (await call(main, 'DescribeKey', { KeyId: ref })).KeyMetadata;
    assert.equal(got.KeyId, md.KeyId, `DescribeKey(${ref}): ${short(got)}`);
    assert.equal(got.Arn, md.Arn, short(got));
    assert.equal(got.Description, 'conformance symmetric key', short(got));
  }
});

step('ListKeys with Limit and Marker', async () => {
  const mine = new Set(await Promise.all(['sym', 'hmac', 'ecc', 'withpolicy'].map(async (n) => (await key(n)).KeyId)));
  const seen = [];
  let marker;
  let pages = 0;
  for (;;) {
    const input = marker ? { Limit: 2, Marker: marker } : { Limit: 2 };
    const page = await call(main, 'ListKeys', input);
    pages++;
    assert.ok(page.Keys.length <= 2, `ListKeys ${short(input)}: ${short(page)}`);
    for (const k of page.Keys) {
      assert.equal(k.KeyArn, `arn:aws:kms:${REGION}:${account}:key/${k.KeyId}`, short(page));
      seen.push(k.KeyId);
    }
    if (!page.Truncated) break;
    assert.ok(page.NextMarker, `ListKeys Truncated without NextMarker: ${short(page)}`);
    marker = page.NextMarker;
    assert.ok(pages < 1000, 'ListKeys does not end');
  }
  assert.ok(pages >= 2, '4+ keys with Limit 2 must take 2+ pages');
  assert.equal(new Set(seen).size, seen.length, `ListKeys pages repeat keys: ${seen}`);
  for (const id of mine) assert.ok(seen.includes(id), `ListKeys misses ${id}`);
  // The SDK's paginator walks the same markers.
  const viaPaginator = [];
  for await (const page of kms.paginateListKeys({ client: main, pageSize: 3 }, {})) {
    viaPaginator.push(...page.Keys.map((k) => k.KeyId));
  }
  for (const id of mine) assert.ok(viaPaginator.includes(id), `paginateListKeys misses ${id}`);
});

step('DisableKey / EnableKey; DisabledException', async () => {
  const md = await key('toggle', { Description: 'enable/disable' });
  await call(main, 'DisableKey', { KeyId: md.KeyId });
  let got = (await call(main, 'DescribeKey', { KeyId: md.KeyId })).KeyMetadata;
  assert.deepEqual([got.KeyState, got.Enabled], ['Disabled', false], short(got));
  await expectError(main, 'Encrypt', 'DisabledException', { KeyId: md.KeyId, Plaintext: bytes('x') });
  await call(main, 'EnableKey', { KeyId: md.KeyId });
  got = (await call(main, 'DescribeKey', { KeyId: md.KeyId })).KeyMetadata;
  assert.deepEqual([got.KeyState, got.Enabled], ['Enabled', true], short(got));
  await call(main, 'Encrypt', { KeyId: md.KeyId, Plaintext: bytes('x') });
});

step('ScheduleKeyDeletion / CancelKeyDeletion; KMSInvalidStateException', async () => {
  const md = await key('doomed', { Description: 'deletion' });
  await expectError(main, 'ScheduleKeyDeletion', 'ValidationException', { KeyId: md.KeyId, PendingWindowInDays: 3 });
  const before = Date.now();
  const resp = await call(main, 'ScheduleKeyDeletion', { KeyId: md.KeyId, PendingWindowInDays: 7 });
  const ctx = `ScheduleKeyDeletion response: ${short(resp)}`;
  assert.equal(resp.KeyId, md.Arn, ctx);
  assert.equal(resp.KeyState, 'PendingDeletion', ctx);
  assert.equal(resp.PendingWindowInDays, 7, ctx);
  const days = (resp.DeletionDate.getTime() - before) / 86400e3;
  assert.ok(days >= 6 && days <= 8, ctx);
  const got = (await call(main, 'DescribeKey', { KeyId: md.KeyId })).KeyMetadata;
  assert.equal(got.KeyState, 'PendingDeletion', short(got));
  assert.equal(got.Enabled, false, short(got));
  assert.equal(got.DeletionDate.getTime(), resp.DeletionDate.getTime(), short(got));
  await expectError(main, 'Encrypt', 'KMSInvalidStateException', { KeyId: md.KeyId, Plaintext: bytes('x') });
  const cancel = await call(main, 'CancelKeyDeletion', { KeyId: md.KeyId });
  assert.equal(cancel.KeyId, md.Arn, short(cancel));
  const after = (await call(main, 'DescribeKey', { KeyId: md.KeyId })).KeyMetadata;
  assert.equal(after.KeyState, 'Disabled', `after CancelKeyDeletion (AWS leaves it Disabled): ${short(after)}`);
  assert.equal(after.DeletionDate, undefined, short(after));
  const again = await call(main, 'ScheduleKeyDeletion', { KeyId: md.KeyId, PendingWindowInDays: 30 });
  const days30 = (again.DeletionDate.getTime() - before) / 86400e3;
  assert.ok(days30 >= 29 && days30 <= 31, short(again));
});

step('CreateAlias / DescribeKey by alias / ListAliases / UpdateAlias / DeleteAlias', async () => {
  const k1 = await key('sym');
  const k2 = await key('alias2', { Description: 'alias target 2' });
  const name = `alias/conformance-js-${RUN}`;
  const aliasArn = `arn:aws:kms:${REGION}:${account}:${name}`;
  await call(main, 'CreateAlias', { AliasName: name, TargetKeyId: k1.KeyId });
  await expectError(main, 'CreateAlias', 'AlreadyExistsException', { AliasName: name, TargetKeyId: k2.KeyId });
  for (const ref of [name, aliasArn]) {
    const got = (await call(main, 'DescribeKey', { KeyId: ref })).KeyMetadata;
    assert.equal(got.KeyId, k1.KeyId, `DescribeKey(${ref}): ${short(got)}`);
  }
  const viaAlias = await call(main, 'Encrypt', { KeyId: name, Plaintext: bytes('via alias') });
  assert.equal(viaAlias.KeyId, k1.Arn, short(viaAlias));

  const all = await call(main, 'ListAliases', {});
  const entry = all.Aliases.filter((x) => x.AliasName === name);
  assert.equal(entry.length, 1, `ListAliases: ${short(all)}`);
  assert.equal(entry[0].AliasArn, aliasArn, short(entry));
  assert.equal(entry[0].TargetKeyId, k1.KeyId, short(entry));
  const only = await call(main, 'ListAliases', { KeyId: k1.KeyId });
  assert.deepEqual(only.Aliases.map((x) => x.AliasName), [name], `ListAliases(KeyId): ${short(only)}`);

  await call(main, 'UpdateAlias', { AliasName: name, TargetKeyId: k2.KeyId });
  const moved = (await call(main, 'DescribeKey', { KeyId: name })).KeyMetadata;
  assert.equal(moved.KeyId, k2.KeyId, `DescribeKey after UpdateAlias: ${short(moved)}`);
  const none = await call(main, 'ListAliases', { KeyId: k1.KeyId });
  assert.deepEqual(none.Aliases, [], `ListAliases(KeyId) after UpdateAlias moved it away: ${short(none)}`);

  await call(main, 'DeleteAlias', { AliasName: name });
  await expectError(main, 'DescribeKey', 'NotFoundException', { KeyId: name });
  await expectError(main, 'DeleteAlias', 'NotFoundException', { AliasName: name });
});

step('Encrypt / Decrypt (Decrypt without KeyId)', async () => {
  const md = await key('sym');
  const plain = crypto.randomBytes(100);
  const e = await call(main, 'Encrypt', { KeyId: md.KeyId, Plaintext: plain });
  assert.equal(e.KeyId, md.Arn, `Encrypt response: ${short(e)}`);
  assert.equal(e.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT', short(e));
  assert.ok(e.CiphertextBlob instanceof Uint8Array && e.CiphertextBlob.length > plain.length, short(e));
  const d = await call(main, 'Decrypt', { CiphertextBlob: e.CiphertextBlob });
  assert.ok(eqBytes(d.Plaintext, plain), `Decrypt response: ${short(d)}`);
  assert.equal(d.KeyId, md.Arn, short(d));
  assert.equal(d.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT', short(d));
  const d2 = await call(main, 'Decrypt', { CiphertextBlob: e.CiphertextBlob, KeyId: md.Arn });
  assert.ok(eqBytes(d2.Plaintext, plain));
});

step('Encrypt / Decrypt with encryption context; InvalidCiphertextException for a wrong one', async () => {
  const md = await key('sym');
  const ctx = { project: 'alpha', purpose: 'conformance' };
  const e = await call(main, 'Encrypt', { KeyId: md.KeyId, Plaintext: bytes('secret'), EncryptionContext: ctx });
  const d = await call(main, 'Decrypt', { CiphertextBlob: e.CiphertextBlob, EncryptionContext: { purpose: 'conformance', project: 'alpha' } });
  assert.equal(Buffer.from(d.Plaintext).toString(), 'secret');
  await expectError(main, 'Decrypt', 'InvalidCiphertextException', { CiphertextBlob: e.CiphertextBlob, EncryptionContext: { project: 'beta', purpose: 'conformance' } });
  await expectError(main, 'Decrypt', 'InvalidCiphertextException', { CiphertextBlob: e.CiphertextBlob });
});

step('Decrypt of a tampered blob: InvalidCiphertextException', async () => {
  const md = await key('sym');
  const blob = (await call(main, 'Encrypt', { KeyId: md.KeyId, Plaintext: bytes('do not touch') })).CiphertextBlob;
  for (const pos of [blob.length - 1, blob.length - 17]) {
    const bad = Uint8Array.from(blob);
    bad[pos] ^= 0x01;
    await expectError(main, 'Decrypt', 'InvalidCiphertextException', { CiphertextBlob: bad });
  }
  await expectError(main, 'Decrypt', 'InvalidCiphertextException', { CiphertextBlob: bytes('not a kms ciphertext') });
  await expectError(main, 'Decrypt', 'InvalidCiphertextException', { CiphertextBlob: crypto.randomBytes(200) });
});

step('Decrypt naming another KeyId: IncorrectKeyException', async () => {
  const k1 = await key('sym');
  const k2 = await key('alias2');
  const blob = (await call(main, 'Encrypt', { KeyId: k1.KeyId, Plaintext: bytes('k1') })).CiphertextBlob;
  await expectError(main, 'Decrypt', 'IncorrectKeyException', { CiphertextBlob: blob, KeyId: k2.KeyId });
});

step('ReEncrypt', async () => {
  const k1 = await key('sym');
  const k2 = await key('alias2');
  const e = await call(main, 'Encrypt', { KeyId: k1.KeyId, Plaintext: bytes('move me'), EncryptionContext: { a: '1' } });
  const r = await call(main, 'ReEncrypt', {
    CiphertextBlob: e.CiphertextBlob, SourceEncryptionContext: { a: '1' },
    DestinationKeyId: k2.KeyId, DestinationEncryptionContext: { b: '2' },
  });
  assert.equal(r.SourceKeyId, k1.Arn, `ReEncrypt response: ${short(r)}`);
  assert.equal(r.KeyId, k2.Arn, short(r));
  assert.equal(r.SourceEncryptionAlgorithm, 'SYMMETRIC_DEFAULT', short(r));
  assert.equal(r.DestinationEncryptionAlgorithm, 'SYMMETRIC_DEFAULT', short(r));
  const d = await call(main, 'Decrypt', { CiphertextBlob: r.CiphertextBlob, EncryptionContext: { b: '2' } });
  assert.equal(Buffer.from(d.Plaintext).toString(), 'move me');
  assert.equal(d.KeyId, k2.Arn, short(d));
});

step('GenerateDataKey (KeySpec AES_256, NumberOfBytes)', async () => {
  const md = await key('sym');
  const dk = await call(main, 'GenerateDataKey', { KeyId: md.KeyId, KeySpec: 'AES_256' });
  assert.equal(dk.Plaintext.length, 32, short(dk));
  assert.equal(dk.KeyId, md.Arn, short(dk));
  const d = await call(main, 'Decrypt', { CiphertextBlob: dk.CiphertextBlob });
  assert.ok(eqBytes(d.Plaintext, dk.Plaintext));
  const dk64 = await call(main, 'GenerateDataKey', { KeyId: md.KeyId, NumberOfBytes: 64, EncryptionContext: { f: 'g' } });
  assert.equal(dk64.Plaintext.length, 64, short(dk64));
  const d64 = await call(main, 'Decrypt', { CiphertextBlob: dk64.CiphertextBlob, EncryptionContext: { f: 'g' } });
  assert.ok(eqBytes(d64.Plaintext, dk64.Plaintext));
  await expectError(main, 'GenerateDataKey', 'ValidationException', { KeyId: md.KeyId, NumberOfBytes: 0 });
});

step('GenerateDataKeyWithoutPlaintext, then Decrypt', async () => {
  const md = await key('sym');
  const dk = await call(main, 'GenerateDataKeyWithoutPlaintext', { KeyId: md.KeyId, KeySpec: 'AES_256', EncryptionContext: { x: 'y' } });
  assert.equal(dk.Plaintext, undefined, short(dk));
  assert.equal(dk.KeyId, md.Arn, short(dk));
  const d = await call(main, 'Decrypt', { CiphertextBlob: dk.CiphertextBlob, EncryptionContext: { x: 'y' } });
  assert.equal(d.Plaintext.length, 32, short(d));
});

step('GenerateRandom; ValidationException for 0 and 2000 bytes', async () => {
  const r1 = (await call(main, 'GenerateRandom', { NumberOfBytes: 32 })).Plaintext;
  const r2 = (await call(main, 'GenerateRandom', { NumberOfBytes: 32 })).Plaintext;
  assert.equal(r1.length, 32);
  assert.ok(!eqBytes(r1, r2), 'two GenerateRandom answers are equal');
  assert.equal((await call(main, 'GenerateRandom', { NumberOfBytes: 1024 })).Plaintext.length, 1024);
  await expectError(main, 'GenerateRandom', 'ValidationException', { NumberOfBytes: 0 });
  await expectError(main, 'GenerateRandom', 'ValidationException', { NumberOfBytes: 2000 });
});

step('NotFoundException for an unknown key', async () => {
  const unknown = crypto.randomUUID();
  await expectError(main, 'DescribeKey', 'NotFoundException', { KeyId: unknown });
  await expectError(main, 'Encrypt', 'NotFoundException', { KeyId: unknown, Plaintext: bytes('x') });
});

step('InvalidKeyUsageException', async () => {
  await expectError(main, 'Sign', 'InvalidKeyUsageException', {
    KeyId: (await key('sym')).KeyId, Message: bytes('m'), MessageType: 'RAW', SigningAlgorithm: 'ECDSA_SHA_256',
  });
  await expectError(main, 'Encrypt', 'InvalidKeyUsageException', { KeyId: (await key('hmac')).KeyId, Plaintext: bytes('m') });
});

step('EnableKeyRotation / GetKeyRotationStatus / DisableKeyRotation', async () => {
  const md = await key('rot', { Description: 'rotation' });
  assert.equal((await call(main, 'GetKeyRotationStatus', { KeyId: md.KeyId })).KeyRotationEnabled, false);
  await call(main, 'EnableKeyRotation', { KeyId: md.KeyId });
  const st = await call(main, 'GetKeyRotationStatus', { KeyId: md.KeyId });
  assert.equal(st.KeyRotationEnabled, true, short(st));
  await call(main, 'DisableKeyRotation', { KeyId: md.KeyId });
  assert.equal((await call(main, 'GetKeyRotationStatus', { KeyId: md.KeyId })).KeyRotationEnabled, false);
});

step('RotateKeyOnDemand / ListKeyRotations; old ciphertext still decrypts', async () => {
  const md = await key('rot');
  const before = await call(main, 'ListKeyRotations', { KeyId: md.KeyId });
  assert.deepEqual(before.Rotations ?? [], [], `ListKeyRotations before any: ${short(before)}`);
  const old = await call(main, 'Encrypt', { KeyId: md.KeyId, Plaintext: bytes('before rotation') });
  const r = await call(main, 'RotateKeyOnDemand', { KeyId: md.KeyId });
  assert.ok([md.KeyId, md.Arn].includes(r.KeyId), `RotateKeyOnDemand response: ${short(r)}`);
  let listed;
  const deadline = Date.now() + 10000;  // AWS rotates asynchronously
  for (;;) {
    listed = await call(main, 'ListKeyRotations', { KeyId: md.KeyId });
    if ((listed.Rotations ?? []).length > 0 || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.equal((listed.Rotations ?? []).length, 1, `ListKeyRotations after one rotation: ${short(listed)}`);
  assert.equal(listed.Rotations[0].RotationType, 'ON_DEMAND', short(listed));
  assert.ok(listed.Rotations[0].RotationDate instanceof Date, short(listed));
  const d = await call(main, 'Decrypt', { CiphertextBlob: old.CiphertextBlob });
  assert.equal(Buffer.from(d.Plaintext).toString(), 'before rotation');
  const fresh = await call(main, 'Encrypt', { KeyId: md.KeyId, Plaintext: bytes('after rotation') });
  const d2 = await call(main, 'Decrypt', { CiphertextBlob: fresh.CiphertextBlob });
  assert.equal(Buffer.from(d2.Plaintext).toString(), 'after rotation');
});

step('GetPublicKey / Sign / Verify (RAW and DIGEST), checked with node:crypto', async () => {
  const md = await key('ecc');
  const pub = await call(main, 'GetPublicKey', { KeyId: md.KeyId });
  const ctx = `GetPublicKey response: ${short(pub)}`;
  assert.equal(pub.KeyId, md.Arn, ctx);
  assert.equal(pub.KeySpec, 'ECC_NIST_P256', ctx);
  assert.equal(pub.KeyUsage, 'SIGN_VERIFY', ctx);
  assert.deepEqual(pub.SigningAlgorithms, ['ECDSA_SHA_256'], ctx);
  const spki = crypto.createPublicKey({ key: Buffer.from(pub.PublicKey), format: 'der', type: 'spki' });
  assert.equal(spki.asymmetricKeyType, 'ec', ctx);
  assert.equal(spki.asymmetricKeyDetails.namedCurve, 'prime256v1', ctx);

  const msg = Buffer.concat([bytes('conformance message '), crypto.randomBytes(16)]);
  const digest = crypto.createHash('sha256').update(msg).digest();
  const raw = await call(main, 'Sign', { KeyId: md.KeyId, Message: msg, MessageType: 'RAW', SigningAlgorithm: 'ECDSA_SHA_256' });
  assert.equal(raw.KeyId, md.Arn, short(raw));
  assert.equal(raw.SigningAlgorithm, 'ECDSA_SHA_256', short(raw));
  const dig = await call(main, 'Sign', { KeyId: md.KeyId, Message: digest, MessageType: 'DIGEST', SigningAlgorithm: 'ECDSA_SHA_256' });
  for (const sig of [raw.Signature, dig.Signature]) {
    // A DIGEST signature over SHA-256(msg) is an ECDSA_SHA_256 signature of msg.
    assert.ok(crypto.verify('sha256', msg, { key: spki, dsaEncoding: 'der' }, Buffer.from(sig)),
      `node:crypto rejects the signature ${Buffer.from(sig).toString('base64')}`);
    for (const [type, m] of [['RAW', msg], ['DIGEST', digest]]) {
      const v = await call(main, 'Verify', { KeyId: md.KeyId, Message: m, MessageType: type, Signature: sig, SigningAlgorithm: 'ECDSA_SHA_256' });
      assert.equal(v.SignatureValid, true, short(v));
      assert.equal(v.KeyId, md.Arn, short(v));
    }
  }
  await expectError(main, 'Verify', 'KMSInvalidSignatureException', {
    KeyId: md.KeyId, Message: Buffer.concat([msg, bytes('!')]), MessageType: 'RAW', Signature: raw.Signature, SigningAlgorithm: 'ECDSA_SHA_256',
  });
});

step('GenerateMac / VerifyMac (HMAC_SHA_256)', async () => {
  const md = await key('hmac');
  const msg = bytes('mac me');
  const m1 = await call(main, 'GenerateMac', { KeyId: md.KeyId, Message: msg, MacAlgorithm: 'HMAC_SHA_256' });
  assert.equal(m1.Mac.length, 32, short(m1));
  assert.ok([md.KeyId, md.Arn].includes(m1.KeyId), short(m1));
  assert.equal(m1.MacAlgorithm, 'HMAC_SHA_256', short(m1));
  const v = await call(main, 'VerifyMac', { KeyId: md.KeyId, Message: msg, Mac: m1.Mac, MacAlgorithm: 'HMAC_SHA_256' });
  assert.equal(v.MacValid, true, short(v));
  const bad = Uint8Array.from(m1.Mac);
  bad[0] ^= 1;
  await expectError(main, 'VerifyMac', 'KMSInvalidMacException', { KeyId: md.KeyId, Message: msg, Mac: bad, MacAlgorithm: 'HMAC_SHA_256' });
});

step('TagResource / UntagResource / ListResourceTags', async () => {
  const md = await key('sym');
  const sorted = (t) => t.Tags.map((x) => `${x.TagKey}=${x.TagValue}`).sort();
  let tags = await call(main, 'ListResourceTags', { KeyId: md.KeyId });
  assert.deepEqual(sorted(tags), ['purpose=test', 'suite=js'], `tags from CreateKey: ${short(tags)}`);
  await call(main, 'TagResource', { KeyId: md.KeyId, Tags: [{ TagKey: 'team', TagValue: 'kms' }, { TagKey: 'suite', TagValue: 'js2' }] });
  tags = await call(main, 'ListResourceTags', { KeyId: md.KeyId });
  assert.deepEqual(sorted(tags), ['purpose=test', 'suite=js2', 'team=kms'], short(tags));
  await call(main, 'UntagResource', { KeyId: md.KeyId, TagKeys: ['purpose', 'team'] });
  tags = await call(main, 'ListResourceTags', { KeyId: md.KeyId });
  assert.deepEqual(sorted(tags), ['suite=js2'], short(tags));
});

step('GetKeyPolicy default policy: account root kms:*', async () => {
  const md = await key('sym');
  const got = await call(main, 'GetKeyPolicy', { KeyId: md.KeyId, PolicyName: 'default' });
  const policy = JSON.parse(got.Policy);
  const stmts = Array.isArray(policy.Statement) ? policy.Statement : [policy.Statement];
  const root = stmts.filter((s) => s.Effect === 'Allow' && s.Principal &&
    [`arn:aws:iam::${account}:root`, account].includes(s.Principal.AWS) &&
    (s.Action === 'kms:*' || (Array.isArray(s.Action) && s.Action.includes('kms:*'))));
  assert.ok(root.length > 0, `default policy lacks account root kms:*: ${got.Policy}`);
});

step('PutKeyPolicy allowing only principal A: AccessDeniedException for B', async () => {
  const k = (await call(a, 'CreateKey', { Description: 'only A' })).KeyMetadata;
  const blob = (await call(b, 'Encrypt', { KeyId: k.KeyId, Plaintext: bytes('b may') })).CiphertextBlob;
  const policy = { Version: '2012-10-17', Statement: [{ Sid: 'OnlyA', Effect: 'Allow', Principal: { AWS: aArn }, Action: 'kms:*', Resource: '*' }] };
  await call(a, 'PutKeyPolicy', { KeyId: k.KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) });
  assert.deepEqual(JSON.parse((await call(a, 'GetKeyPolicy', { KeyId: k.KeyId, PolicyName: 'default' })).Policy), policy);
  await expectError(b, 'Encrypt', 'AccessDeniedException', { KeyId: k.KeyId, Plaintext: bytes('b may not') });
  await expectError(b, 'Decrypt', 'AccessDeniedException', { CiphertextBlob: blob });
  await expectError(main, 'Encrypt', 'AccessDeniedException', { KeyId: k.KeyId, Plaintext: bytes('main may not') });
  const d = await call(a, 'Decrypt', { CiphertextBlob: blob });
  assert.equal(Buffer.from(d.Plaintext).toString(), 'b may');
});

step('Policy with a kms:EncryptionContext:project condition', async () => {
  const k = (await call(a, 'CreateKey', { Description: 'context-bound' })).KeyMetadata;
  const policy = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'Admin', Effect: 'Allow', Principal: { AWS: aArn }, Action: 'kms:*', Resource: '*' },
      {
        Sid: 'UseInProjectAlpha', Effect: 'Allow', Principal: { AWS: bArn },
        Action: ['kms:Encrypt', 'kms:Decrypt'], Resource: '*',
        Condition: { StringEquals: { 'kms:EncryptionContext:project': 'alpha' } },
      },
    ],
  };
  await call(a, 'PutKeyPolicy', { KeyId: k.KeyId, PolicyName: 'default', Policy: JSON.stringify(policy) });
  const ok = await call(b, 'Encrypt', { KeyId: k.KeyId, Plaintext: bytes('alpha data'), EncryptionContext: { project: 'alpha' } });
  const d = await call(b, 'Decrypt', { CiphertextBlob: ok.CiphertextBlob, EncryptionContext: { project: 'alpha' } });
  assert.equal(Buffer.from(d.Plaintext).toString(), 'alpha data');
  await expectError(b, 'Encrypt', 'AccessDeniedException', { KeyId: k.KeyId, Plaintext: bytes('x'), EncryptionContext: { project: 'beta' } });
  await expectError(b, 'Encrypt', 'AccessDeniedException', { KeyId: k.KeyId, Plaintext: bytes('x') });
});

step('wrong secret key: InvalidSignatureException; unknown access key: UnrecognizedClientException', async () => {
  const secret = need('AWS_SECRET_ACCESS_KEY');
  const wrong = makeClient(need('AWS_ACCESS_KEY_ID'), secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A'));
  await expectError(wrong, 'ListKeys', 'InvalidSignatureException', {});
  const unknown = makeClient('AKIA' + crypto.randomBytes(8).toString('hex').toUpperCase(), secret);
  await expectError(unknown, 'ListKeys', 'UnrecognizedClientException', {});
});
