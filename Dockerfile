# syntax=docker/dockerfile:1
# envoy-injector: the webhook, and the envoy-init image (iptables + ip6tables, nft and legacy).

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# iptables brings iptables/ip6tables with both the nft and legacy backends.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
RUN chmod 0755 dist/main.js && ln -s /app/dist/main.js /usr/local/bin/envoy-injector
ENV NODE_ENV=production
# Non-root by default; envoy-init's pod spec runs it as root with only NET_ADMIN and NET_RAW.
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["envoy-injector"]
CMD ["serve"]
