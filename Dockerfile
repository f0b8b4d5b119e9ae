# The tracker image: the `tracker` command (validator, gateway, simulator, topics, dlq) and the built map page.
#
#   docker build -t courier-tracker .          (docker compose up --build does this for every service)
#
# Stage 1 builds frontend/ into frontend/dist with Node; stage 2 installs the Python project and copies the built
# pages next to it. Node, npm and node_modules stay in stage 1.

# -- stage 1: the browser pages ----------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
# Dependencies first, so editing a page does not re-run npm ci.
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY frontend/ ./
RUN npm run build

# -- stage 2: the Python project ---------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Metadata and code only (see .dockerignore); README.md* so a checkout without it still builds. No `embedded`
# extra: the containers use compose's Kafka and Redis, so no Java runtime, Tansu or redis-server.
COPY pyproject.toml README.md* ./
COPY tracker/ tracker/
COPY simulator/ simulator/
RUN pip install . && useradd --create-home --uid 10001 tracker
COPY --from=frontend /src/frontend/dist /app/frontend/dist

# The gateway serves the map from here (the package default, frontend/dist next to the source tree, does not
# exist in site-packages). Bind to every interface: inside a container 127.0.0.1 is unreachable from outside.
ENV TRACKER_STATIC_DIR=/app/frontend/dist \
    TRACKER_HTTP_HOST=0.0.0.0 \
    TRACKER_DATA_DIR=/tmp/tracker
USER tracker
EXPOSE 8000
# Each compose service names its command (tracker validate, tracker gateway, ...); alone, the image explains itself.
CMD ["tracker", "--help"]
