# Trainyard in a container: the README's install (scripts/bootstrap.sh python, what `make run`
# runs first) at build time, then the server (or a worker, by the command) as a non-root user.
# compose.yaml runs web processes and workers from this image.
FROM python:3.11-slim-bookworm

# make: the README's commands; bubblewrap: execution sandboxes where the kernel allows them
RUN apt-get update \
    && apt-get install -y --no-install-recommends make bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group trainyard \
    && mkdir -p /data \
    && chown trainyard:trainyard /data

WORKDIR /opt/trainyard
RUN chown trainyard:trainyard /opt/trainyard
USER trainyard
# the pinned requirements first, so that a code change does not reinstall them
COPY --chown=trainyard:trainyard requirements.txt ./
COPY --chown=trainyard:trainyard scripts/bootstrap.sh scripts/
RUN bash scripts/bootstrap.sh python
COPY --chown=trainyard:trainyard . .

ENV TRAINYARD_HOST=0.0.0.0 \
    TRAINYARD_PORT=5000 \
    DATA_DIR=/data \
    INSTANCE_DIR=/data/instance \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD [".venv/bin/python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4).status != 200)"]
# exec form: SIGTERM reaches the server (or the worker, which then hands its executions back)
CMD [".venv/bin/python", "-m", "app"]
