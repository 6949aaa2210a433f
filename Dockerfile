# pgconvoy's image (the `worker` and `serve` services of docker-compose.yml),
# and MinIO built from the same pinned Go module as `npm run setup` builds.
#   docker build -t pgconvoy .
#   docker build --target minio -t pgconvoy-minio .

# Build: the locked dependencies, the TypeScript and the workflow bundle.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npm run build && rm -rf dist/test dist/bench && npm prune --omit=dev

# Run: Node, the PostgreSQL client tools (pg_dump/pg_restore for backups) and
# the built app, as an unprivileged user. pg_dump must be at least as new as
# the server it dumps, so the client comes from the PostgreSQL project's
# repository at the newest major (it dumps servers back to 9.2), not
# Debian's 15.
FROM node:20-bookworm-slim AS runtime
ARG PG_CLIENT_MAJOR=18
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends "postgresql-client-$PG_CLIENT_MAJOR" \
 && apt-get purge -y curl && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY web ./web
COPY deploy ./deploy
COPY migrations ./migrations
ENV NODE_ENV=production PGCONVOY_LOG_FORMAT=json PGCONVOY_STATE_DIR=/tmp/pgconvoy
USER node
ENTRYPOINT ["node", "/app/bin/pgconvoy"]
CMD ["--help"]

# MinIO, pinned as scripts/provision-tools.sh pins it.
FROM golang:1.26-bookworm AS minio-build
RUN GOBIN=/out go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c

FROM debian:bookworm-slim AS minio
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data minio && mkdir -p /data && chown minio /data
COPY --from=minio-build /out/minio /usr/local/bin/minio
USER minio
ENTRYPOINT ["minio"]

# The default target: pgconvoy.
FROM runtime
