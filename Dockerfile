# The Market API image: the service (`market-api`) and its load generator (`market-load`).
#
# docker compose builds it for the `app`, `load` and `otel-collector-health` services. The
# package is installed from its sources with the exact versions of constraints.txt, the ones the
# tests last passed with.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_HOST=0.0.0.0 \
    APP_PORT=8000

# A fixed, unprivileged uid: nothing in the container runs as root once built.
RUN groupadd --system --gid 10001 market \
    && useradd --system --uid 10001 --gid market --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin market

WORKDIR /srv/market-api
COPY pyproject.toml README.md constraints.txt ./
COPY docs/runbooks.md ./docs/runbooks.md
COPY app ./app
COPY telemetry ./telemetry
COPY devstack ./devstack
COPY alerts ./alerts
RUN pip install --no-cache-dir -c constraints.txt .

USER 10001:10001
EXPOSE 8000

# The slim image has no curl or wget: Python asks the health endpoint, which stays 200 while
# memcached is down (status "degraded"), so only a dead or hung process is unhealthy.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('APP_PORT', '8000') + '/api/monitoring/performance/health', timeout=3)"]

CMD ["market-api"]
