"""A generated password that lives only in Pulumi state, encrypted as a secret.

pulumi_random.RandomPassword is the usual tool, but its provider plugin cannot be built on
this project's machines (no source of pulumi-random's provider module is served by the Go
module proxy; see scripts/engine.sh), so the password comes from a small dynamic provider
instead: generated once with the operating system's CSPRNG when the resource is created,
kept in state from then on, replaced only when its length changes.
"""
from __future__ import annotations

import secrets
import string
import uuid

import pulumi
import pulumi.dynamic as dynamic

#: Letters and digits only: the password is spliced into redis.conf and shell commands.
ALPHABET = string.ascii_letters + string.digits


class _PasswordProvider(dynamic.ResourceProvider):
    def create(self, props):
        length = int(props["length"])
        value = "".join(secrets.choice(ALPHABET) for _ in range(length))
        return dynamic.CreateResult(id_=uuid.uuid4().hex, outs={"length": length, "result": value})

    def diff(self, _id, olds, news):
        changed = int(olds.get("length", 0)) != int(news["length"])
        return dynamic.DiffResult(changes=changed, replaces=["length"] if changed else [],
                                  delete_before_replace=False)


class GeneratedPassword(dynamic.Resource):
    """``result`` is a secret Output; nothing else of the password leaves the state."""

    result: pulumi.Output[str]

    def __init__(self, name: str, length: int, opts: pulumi.ResourceOptions | None = None):
        secret = pulumi.ResourceOptions(additional_secret_outputs=["result"])
        super().__init__(_PasswordProvider(), name, {"length": length, "result": None},
                         pulumi.ResourceOptions.merge(opts, secret))
