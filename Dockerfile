# syntax=docker/dockerfile:1
# One image for `egret control` and `egret agent` (and every other egret command):
#   docker build -t REGISTRY/egret:VERSION .
# Stage 1 builds the filter (AssemblyScript → filter/build/egret.wasm), the TypeScript (dist/) and
# the native addons (dist/native: the agent's AF_PACKET capture ring, the sidecar's SO_ORIGINAL_DST,
# with the image's g++); stage 2 is node:20-slim with only the built files.
# The layout under /opt/egret is the repository's, because the code finds proto/, manifests/crds/
# and filter/build/egret.wasm relative to itself.

FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY asconfig.json tsconfig.json ./
COPY scripts ./scripts
COPY proto ./proto
COPY filter ./filter
COPY control ./control
COPY bench ./bench
COPY istio-tests ./istio-tests
COPY manifests ./manifests
COPY bin ./bin
RUN npm run build \
 && test -e dist/native/packet_ring.node \
 && npm prune --omit=dev --no-audit --no-fund \
 && sha256sum filter/build/egret.wasm

FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/egret
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist/control ./dist/control
COPY --from=build /src/dist/native ./dist/native
COPY --from=build /src/proto ./proto
COPY --from=build /src/manifests ./manifests
COPY --from=build /src/filter/build/egret.wasm /src/filter/build/egret.debug.wasm ./filter/build/
ENV NODE_ENV=production
# Non-root by default (the control service); the agent's DaemonSet runs it as UID 0 with only
# CAP_NET_RAW (see manifests/base/agent.yaml for why).
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/egret/bin/egret.js"]
CMD ["--help"]
LABEL org.opencontainers.image.title="egret" \
      org.opencontainers.image.description="DNS-verified egress control for Kubernetes workloads in an Istio mesh" \
      org.opencontainers.image.licenses="Apache-2.0"
