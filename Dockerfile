# syntax=docker/dockerfile:1
# The image of every project process (see cctv/services.py): `docker run <image> worker`,
# `... sink`, `... topics apply`, `... storage init`. ENTRYPOINT is the `cctv` console script.
#
# Every native dependency (confluent-kafka, rocksdict, chdb, opencv-python-headless, lz4,
# zstandard, ...) ships manylinux wheels, so no compiler or -dev package is installed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 cctv \
    && useradd --system --uid 10001 --gid cctv --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin cctv

WORKDIR /app

# The installable source tree only (.dockerignore keeps out .venv, var/, tests, docs).
# README* matches nothing harmlessly if the readme is absent (pyproject.toml names it).
COPY pyproject.toml README* ./
COPY cctv ./cctv
COPY schemas ./schemas
COPY services ./services
COPY stream_processors ./stream_processors
COPY infra ./infra
# Runtime dependencies only: no [dev] extra. The build leftovers are removed so /app holds
# just the source that was installed.
RUN pip install . \
    && rm -rf build ./*.egg-info

# Settings default to files next to the source tree (cctv/settings.py REPO_ROOT), which an
# installed package in site-packages does not have: ship config/ and name the files.
COPY config ./config
ENV CCTV_KAFKA__TOPICS_FILE=/app/config/topics.yaml \
    CCTV_CAMPAIGN_FILE=/app/config/campaigns/moi-2563.yaml \
    CCTV_PROVINCES_FILE=/app/config/provinces.yaml \
    CCTV_PROCESSORS__DATADIR=/var/lib/cctv/faust \
    CCTV_CLICKHOUSE__CHDB_PATH=/var/lib/cctv/chdb

# Writable state lives under /var/lib/cctv (mount volumes there); a named volume mounted on
# these directories starts with this ownership.
RUN mkdir -p /var/lib/cctv/faust /var/lib/cctv/chdb \
    && chown -R cctv:cctv /var/lib/cctv

USER cctv

ENTRYPOINT ["cctv"]
CMD ["--help"]
