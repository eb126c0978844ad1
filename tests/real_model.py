"""How long tests give the real default model to work.

On a busy machine (a training run beside the suite, two shared cores) one forward pass of SmolLM2-135M can take
seconds and loading it most of a minute; the SimCord default of 5 s to settle after an action failed `make test`
once. Every real-model test waits at least this long for the model: SimCord's settle timeout, subprocesses'
timeouts.
"""

REAL_MODEL_TIMEOUT_S = 300.0
