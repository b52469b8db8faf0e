# syntax=docker/dockerfile:1
# RMS server image: `docker build -t rms .`; `docker run rms` starts RMS (configure it with
# the environment variables of the README). The same image holds the example services, which
# docker-compose.yml runs with `node services/<name>/dist/main.js`.
# Stages: manifests (package.json files only, for npm ci's layer cache) -> build (all deps,
# tsc) -> runtime (production deps only, compiled output, non-root user `node`).

FROM node:20-bookworm-slim AS manifests
WORKDIR /src
COPY . .
# Every workspace's package.json at its own path, plus the lockfile, so that npm ci works
# for whatever workspaces the root package.json lists.
RUN mkdir -p /manifests \
 && cp package.json package-lock.json /manifests/ \
 && find . -name package.json -not -path '*/node_modules/*' -not -path './package.json' \
      -exec cp --parents {} /manifests/ \;

FROM node:20-bookworm-slim AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY --from=manifests /manifests/ ./
RUN npm ci
COPY . .
RUN npm run build \
 && mkdir -p /out \
 && find . -type d -name dist -not -path '*/node_modules/*' -prune -exec cp -r --parents {} /out/ \;

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production PORT=8080 \
    NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY --from=manifests /manifests/ ./
# Production dependencies of the root and of every workspace; workspaces are linked.
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /out/ ./
# The dashboard's static files (served at /dashboard) are not compiled: copied as they are.
COPY services/message-service/dashboard ./services/message-service/dashboard
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node.js itself as the main process, so SIGTERM reaches RMS's graceful shutdown directly.
CMD ["node", "services/message-service/dist/main.js"]
