# One image for every Python service (target `app`; docker-compose.yml picks the command), and
# nginx in front of the web UI (target `proxy`) with this build's static files.
FROM python:3.11-slim AS app
# ACCOUNTS_SQL: where `python -m store accounts` finds the script (the package is installed apart).
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ACCOUNTS_SQL=/app/accounts.sql
# mariadb-client: mariadb-dump and mariadb for `python -m store backup` / `restore`;
# fonts-dejavu-core: the Unicode font the PDF shift report embeds (webui/reports.py).
RUN apt-get update && apt-get install -y --no-install-recommends mariadb-client fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md mosquitto.conf schema.sql accounts.sql accounts.sh ./
COPY plantmodel ./plantmodel
COPY store ./store
COPY broker ./broker
COPY bridge ./bridge
COPY devices ./devices
COPY webui ./webui
COPY stack ./stack
COPY notifier ./notifier
RUN pip install . && python -m webui assets && python -m webui translations compile
# Services run as an unprivileged user (uid 10001, what `python -m broker export --owner` hands
# each service's secrets to). Folders a named volume is mounted on start out owned by it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /secrets /backups && chown app:app /secrets /backups
USER 10001:10001

# nginx (docker-compose's `nginx`): unprivileged (uid 101, ports 8080/8443 inside), our server block
# rendered from the template at start (envsubst of the WEBUI_*/NGINX_*/TLS_*/STATIC_DIR variables),
# the web UI's static files (vendor libraries included) served by nginx itself.
FROM nginxinc/nginx-unprivileged:1.27-alpine AS proxy
USER root
RUN rm -f /etc/nginx/conf.d/default.conf
COPY deploy/nginx/webui.conf.template /etc/nginx/templates/plant.conf.template
COPY --from=app /app/webui/static /usr/share/nginx/plant-static
USER 101
