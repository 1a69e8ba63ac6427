# Commitment Monitor as a background service: `docker compose up -d` (README, "Running in
# production (Docker)"). State (SQLite by default, or nothing when DATABASE_URL points at
# PostgreSQL) lives in the /app/state volume; the watchlist is read from /app/config.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor/ monitor/
COPY seeds/ seeds/
# Installed in place (-e) because the bundled watchlist is read from seeds/ beside the package;
# compiled here because the service runs as a user that cannot write __pycache__.
RUN /opt/venv/bin/pip install -e . && /opt/venv/bin/python -m compileall -q monitor

FROM python:3.11-slim
# Debian's Chromium renders the `fetch: browser` sources (4 of the bundled ones); 360+ MB.
ARG WITH_CHROMIUM=false
# hadolint ignore=DL3008
RUN if [ "$WITH_CHROMIUM" = "true" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends chromium \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --home-dir /app --shell /usr/sbin/nologin monitor
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
RUN mkdir -p /app/state /app/config && chown monitor:monitor /app/state
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////app/state/monitor.db \
    MONITOR_METRICS_PORT=9108 \
    MONITOR_METRICS_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
VOLUME ["/app/state"]
EXPOSE 9108
# Healthy only while the scheduler beats and the store answers (GET /healthz on the ops port).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "monitor.ops"]
ENTRYPOINT ["commitment-monitor"]
CMD ["run"]
