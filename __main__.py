"""The larry stack: load and validate the config, build the components, export the outputs."""
import gc

import pulumi

from components.stack import build, read_config
from plan.loader import ConfigError

# The program builds one long-lived object graph (every resource with its inputs and outputs)
# and frees little of it before exiting: the cyclic collector's passes over that graph took
# half of construction time at 100 Larrys (bench/bench_program.py) and reclaimed ~nothing.
gc.disable()

try:
    cfg = read_config()
except ConfigError as err:
    # One line per config mistake, naming file and key path; a traceback would only hide them.
    raise pulumi.RunError(str(err)) from None

for name, value in build(cfg).items():
    pulumi.export(name, value)
