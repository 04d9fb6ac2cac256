# The reconciler daemon image. Two stages: `build` installs the dependencies pinned, with their
# hashes, in requirements.lock (so two builds of one commit install the same files), then the
# package itself without resolving anything again; the final stage copies that virtualenv onto a
# slim Python base with git, CA certificates, ssh and Graphviz, and runs `reconciler run` as a fixed
# non-root UID. The Helm chart (charts/reconciler) runs this image
# with a read-only root filesystem: only the data directory, /work (where workflows' files go),
# /tmp and $HOME are written.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/reconciler
COPY requirements.lock ./
RUN /opt/reconciler/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY reconciler ./reconciler
COPY plugins ./plugins
RUN /opt/reconciler/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="reconciler" \
      org.opencontainers.image.description="GitOps reconciliation daemon: maintenance automation as state-machine workflows in git" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# git fetches the watched repository (https with CA certificates, or ssh with openssh-client);
# with --verify-signatures, git verifies commits with ssh-keygen (openssh-client) or gpg.
# Graphviz's dot draws the page's state diagrams (graph?format=svg).
# Versions are left to the pinned Debian release so that security updates apply on rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client gpg graphviz \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 reconciler \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/reconciler --create-home \
       --shell /usr/sbin/nologin reconciler \
    && mkdir -p /var/lib/reconciler /work \
    && chown 10001:10001 /var/lib/reconciler /work

COPY --from=build /opt/reconciler /opt/reconciler

ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/reconciler \
    RECONCILER_DATA_DIR=/var/lib/reconciler \
    RECONCILER_WORKDIR=/work \
    RECONCILER_LISTEN=0.0.0.0:8080

# What a commit may use, unless the operator says otherwise: every built-in plugin but shell.run
# (which would let anyone who can commit run commands in the container), files under /work only
# (the data directory is never reachable), env: references to RECONCILER_SECRET_* only.
ENV RECONCILER_ALLOW_PLUGINS=file.read,file.write,file.delete,http.request,http.check,workflow.run,sql.query,sql.exec,nats.publish,nats.subscribe,nats.stream.info,nats.stream,redis.get,redis.set,redis.subscribe,vault.kv.read,vault.kv.write \
    RECONCILER_FILE_ROOTS=/work

WORKDIR /work
USER 10001:10001
EXPOSE 8080

# No curl in a slim image: the interpreter asks /healthz on the port RECONCILER_LISTEN names.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('RECONCILER_LISTEN', ':8080').rpartition(':')[2]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["reconciler"]
CMD ["run"]
