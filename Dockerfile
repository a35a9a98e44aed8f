# One image for every Python service; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md mosquitto.conf schema.sql ./
COPY plantmodel ./plantmodel
COPY store ./store
COPY broker ./broker
COPY bridge ./bridge
COPY devices ./devices
COPY webui ./webui
COPY stack ./stack
RUN pip install . && python -m webui assets
