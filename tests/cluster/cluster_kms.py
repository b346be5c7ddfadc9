"""KMS clients for tests/cluster/run.sh: boto3 clients made from the env files
scripts/dev-cluster.sh writes (dev.env: HAProxy; node-N.env: one node)."""
import os

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
