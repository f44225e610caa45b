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
COPY cctv_cli ./cctv_cli
COPY schemas ./schemas
COPY services ./services
COPY stream_processors ./stream_processors
COPY infra ./infra
# Runtime dependencies only: no [dev] extra. The build leftovers are removed so /app holds
# just the source that was installed. The default topic registry, provinces and campaign are
# package data (cctv/config/): the installed package needs no file from /app.
RUN pip install . \
    && rm -rf build ./*.egg-info

# What the processes write (embedded chDB, Faust tables) goes under the settings' data_dir:
# outside /app and site-packages.
ENV CCTV_DATA_DIR=/var/lib/cctv

# Writable state lives under /var/lib/cctv (mount volumes there); a named volume mounted on
# these directories starts with this ownership.
RUN mkdir -p /var/lib/cctv/faust /var/lib/cctv/chdb /var/lib/cctv/mailer \
    && chown -R cctv:cctv /var/lib/cctv

USER cctv

ENTRYPOINT ["cctv"]
CMD ["--help"]
