# syntax=docker/dockerfile:1
# The runtime image: the `larry` command the coordinator, worker and converge pods run.
#
#   docker build -t ghcr.io/larry-dev/larry-runtime:0.1.0 .
#
# The tag must match larry:runtimeImage (default in plan/model.py); pods run it as
# user 10001 with a read-only root filesystem (components/larry.py RUNTIME_UID).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Only what the pods run: the runtime and the plan contract it reads. The Pulumi program
# (components/) and the policy pack, and their Pulumi SDKs, stay out of the image.
COPY pyproject.toml ./
COPY plan ./plan
COPY runtime ./runtime
RUN python -m venv /opt/larry \
    && /opt/larry/bin/pip install --no-cache-dir --no-compile . \
    && /opt/larry/bin/python -m compileall -q /opt/larry

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 larry \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin larry
COPY --from=build /opt/larry /opt/larry
# Bytecode is compiled above: at run time the root filesystem is read-only and only /tmp
# (an emptyDir) and the mounted volumes are writable.
ENV PATH=/opt/larry/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["larry"]
CMD ["--help"]
