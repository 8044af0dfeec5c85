"""The Larry policy pack: `pulumi preview --policy-pack policies` runs this file.

It only constructs the PolicyPack, which starts the analyzer's gRPC server and blocks; the
rules live in policies/rules/ (one module per domain), where the tests call them directly.
"""
import sys
from pathlib import Path

# The engine runs this directory as a script (runpy), so only policies/ is on sys.path; the
# project root makes `policies.*` importable the same way the tests import it (`plan` comes
# from the project's editable install in the virtualenv PulumiPolicy.yaml names).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.rules import policies  # noqa: E402

PolicyPack(name="larry", policies=policies())
