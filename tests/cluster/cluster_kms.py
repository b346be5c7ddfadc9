"""KMS clients for tests/cluster/run.sh: boto3 clients made from the env files
scripts/dev-cluster.sh writes (dev.env: HAProxy; node-N.env: one node)."""
import os
import time

import boto3
import botocore.config


def env_file(cluster_dir, name):
    """The KEY=VALUE lines of cluster_dir/name as a dict."""
    with open(os.path.join(cluster_dir, name)) as f:
        return dict(line.rstrip("\n").partition("=")[::2] for line in f)


def kms(cluster_dir, name, max_attempts=3):
    """A KMS client for the endpoint and credentials of cluster_dir/name, with the SDK's
    standard retries."""
    e = env_file(cluster_dir, name)
    return boto3.client("kms", endpoint_url=e["CUSTOS_ENDPOINT"], region_name=e["AWS_REGION"],
                        aws_access_key_id=e["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(
                            retries={"mode": "standard", "max_attempts": max_attempts}))


class Stream:
    """Three boto3 clients (standard retries, 5 attempts) streaming CreateKey + Encrypt through
    cluster_dir/dev.env (HAProxy) until stop(): `acked` holds (monotonic time, key id,
    plaintext, ciphertext blob) of every acknowledged pair, `errors` the requests that failed
    after retries (a request that was never acknowledged may fail)."""

    def __init__(self, cluster_dir, clients=3):
        import threading
        self.cluster_dir = cluster_dir
        self.acked, self.errors = [], []
        self._stop = threading.Event()
        # Clients are made here: boto3's default session is not safe to use from several threads.
        self._threads = [threading.Thread(target=self._run, args=(kms(cluster_dir, "dev.env", max_attempts=5),))
                         for _ in range(clients)]
        self.started = time.monotonic()
        for t in self._threads:
            t.start()

    def _run(self, client):
        while not self._stop.is_set():
            try:
                key = client.create_key()["KeyMetadata"]["KeyId"]
                pt = os.urandom(32)
                self.acked.append((time.monotonic(), key, pt, client.encrypt(KeyId=key, Plaintext=pt)["CiphertextBlob"]))
            except Exception as ex:  # counted
                self.errors.append(repr(ex)[:200])

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()
        self.stopped = time.monotonic()

    def longest_wait(self):
        """The longest time without an acknowledgement, from start to stop."""
        times = [self.started] + sorted(a[0] for a in self.acked) + [self.stopped]
        return max(b - a for a, b in zip(times, times[1:]))

    def check_all_decrypt(self):
        client = kms(self.cluster_dir, "dev.env", max_attempts=5)
        for _, key, pt, blob in self.acked:
            assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == pt, key
