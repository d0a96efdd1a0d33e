# gateledger services image: slim, non-root, dependencies pinned by constraints.txt.
# The embedded-stack extras (chDB, the Tansu broker) are left out: production talks to Kafka and a
# ClickHouse server.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gateledger ./gateledger
COPY producers ./producers
COPY stream_processors ./stream_processors
COPY sinks ./sinks
COPY dashboards ./dashboards
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -c constraints.txt .

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/gateledger --shell /usr/sbin/nologin gateledger \
 && mkdir -p /var/lib/gateledger && chown gateledger:gateledger /var/lib/gateledger
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATELEDGER_DATA_DIR=/var/lib/gateledger
USER 10001:10001
WORKDIR /var/lib/gateledger
EXPOSE 8480 8481 6066 8490
ENTRYPOINT ["gateledger"]
CMD ["--help"]
