# Walle in a container: the web server by default, the worker with
# `python manage.py qcluster` (see compose.yaml and docs/production.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# What the worker runs: bubblewrap sandboxes build hooks; git, ssh and rsync
# move the code. Debian's own versions of the base image's release, which its
# security updates patch: pinning them would only block those updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap rsync openssh-client git \
 && rm -rf /var/lib/apt/lists/*

# A dedicated unprivileged user; the data dir is its own and private (0700).
RUN groupadd --system --gid 10001 walle \
 && useradd --system --uid 10001 --gid walle --home-dir /var/lib/walle --shell /usr/sbin/nologin walle \
 && install -d -o walle -g walle -m 0700 /var/lib/walle

WORKDIR /opt/walle
COPY requirements.txt ./
RUN pip install --no-compile -r requirements.txt
# The code belongs to root: the walle user can run it, not change it.
COPY . .

ENV WALLE_DATA_DIR=/var/lib/walle
# Numeric, so Kubernetes runAsNonRoot can verify it without the image's passwd.
USER 10001:10001
VOLUME ["/var/lib/walle"]
EXPOSE 8000
CMD ["gunicorn", "walleproj.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", \
     "--worker-class", "gthread", "--threads", "8", "--timeout", "120", "--access-logfile", "-"]
