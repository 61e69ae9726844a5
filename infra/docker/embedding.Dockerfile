# syntax=docker/dockerfile:1
# The embedding service: loads a vector source, prunes it, serves the pruned table.
#   docker build -f infra/docker/embedding.Dockerfile -t ch8-embedding .      (from the repository root)
#   docker run --rm -p 50051:50051 -v ch8-data:/data ch8-embedding
# Multi-stage: the build stage installs the workspace's locked production dependencies of this one service
# (`pnpm deploy`: its workspace packages copied in, nothing of the other services, no dev tools); the final stage is
# Node and that folder, run as an unprivileged user.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
ARG PNPM_VERSION=10.34.9
# The services run their TypeScript sources through tsx's loader (no separate JavaScript build): the same version as
# the workspace's (root package.json), installed on its own so that every image has it.
ARG TSX_VERSION=4.23.15
RUN npm install -g pnpm@${PNPM_VERSION} \
  && npm install -g --prefix /opt/tsx tsx@${TSX_VERSION}
WORKDIR /src
# Packages from the lockfile alone first: this layer is reused until pnpm-lock.yaml changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch --prod --reporter=append-only
COPY . .
RUN pnpm --filter @ch8/embedding-service --prod --offline --reporter=append-only \
    --config.inject-workspace-packages=true deploy /out

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
  CH8_HOME=/data \
  CH8_EMBEDDING_ADDR=0.0.0.0:50051 \
  CH8_EMBEDDING_METRICS_ADDR=0.0.0.0:9461 \
  CH8_DATA_ROOTS=/data/datasets,/data/vectors
COPY --from=build /opt/tsx /opt/tsx
COPY --from=build /out /app
# The state home (CH8_HOME), owned by the service's user: a fresh named volume mounted there starts with this owner.
RUN mkdir /data && chown 1000:1000 /data
WORKDIR /app
# The node user of the official image, by number so that Kubernetes' runAsNonRoot can check it.
USER 1000:1000
EXPOSE 50051 9461
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--import", "file:///opt/tsx/lib/node_modules/tsx/dist/loader.mjs", "src/main.ts"]
