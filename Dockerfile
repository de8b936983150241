# syntax=docker/dockerfile:1
# envoy-injector: the webhook (`serve`) and, from the same image, the envoy-init container
# (`init-iptables`), which needs iptables and ip6tables with both backends (nft and legacy).
#
#   docker build -t ghcr.io/envoy-injector/envoy-injector:v$(node -p 'require("./package.json").version') .
#
# The tag must match what manifests/deployment.yaml and the config's init.image (default
# ghcr.io/envoy-injector/envoy-injector:v<version>) refer to.

ARG NODE_IMAGE=node:20-bookworm-slim

# 1. Production dependencies only. No production dependency has an install script (the image
#    test checks package-lock.json), so none is run.
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# 2. Compile the TypeScript (needs the dev dependencies, which stay in this stage).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# 3. The runtime image.
FROM ${NODE_IMAGE}
LABEL org.opencontainers.image.title="envoy-injector" \
      org.opencontainers.image.description="Kubernetes mutating webhook injecting an Envoy sidecar and iptables traffic capture" \
      org.opencontainers.image.licenses="Apache-2.0"
# Debian's iptables package carries iptables/ip6tables with both backends (iptables-nft and
# iptables-legacy, plus the -restore variants); envoy-init picks the one the node uses. iproute2's
# `ip` lets envoy-init add ::6/128 to lo, the source of Envoy's IPv6 inbound passthrough.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
# Nothing runs a package manager at run time: drop npm, corepack and yarn from the base image
# (less to patch, less for a scanner to flag). `rm -f` leaves paths a base image lacks alone.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
 && rm -f /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
# version.ts reads /app/package.json (one directory above dist/).
COPY package.json ./package.json
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
RUN chmod 0755 dist/main.js && ln -s /app/dist/main.js /usr/local/bin/envoy-injector
ENV NODE_ENV=production
# Non-root by default (numeric, so runAsNonRoot can verify it). envoy-init's pod spec runs it as
# root with only NET_ADMIN and NET_RAW; the webhook runs as this user with nothing added.
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["envoy-injector"]
CMD ["serve"]
