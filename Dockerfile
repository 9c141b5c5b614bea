# The `clawloops` image: one binary (control plane, runtime manager, CLI) and the built site.
# Used by docker-compose.yml for the control-plane and runtime-manager services.
#   docker build -t clawloops:latest .
# Stage 1 builds with the pinned toolchain (rust-toolchain.toml), cargo-leptos and the npm build
# tools (Tailwind v4, wasm-opt) from package-lock.json; stage 2 is a small Debian with the result.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Tools first, so code changes do not rebuild them.
COPY rust-toolchain.toml Cargo.lock ./
RUN rustup show active-toolchain \
 && cargo install cargo-leptos --version 0.3.10 --locked \
 && cargo install wasm-bindgen-cli --version "=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)"
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENV PATH=/src/node_modules/.bin:$PATH \
    SQLX_OFFLINE=true
RUN cargo leptos build --release --precompress --split \
 && install -D target/release/clawloops /out/clawloops \
 && cp target/release/hash.txt /out/hash.txt \
 && cp -r target/site /out/site

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates iptables \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/clawloops clawloops \
 && mkdir -p /var/lib/clawloops && chown clawloops /var/lib/clawloops
COPY --from=build /out/clawloops /usr/local/bin/clawloops
# The hashed names of the dashboard's files, read beside the binary.
COPY --from=build /out/hash.txt /usr/local/bin/hash.txt
COPY --from=build /out/site /usr/share/clawloops/site
ENV CLAWLOOPS_SITE_ROOT=/usr/share/clawloops/site \
    CLAWLOOPS_DATA_DIR=/var/lib/clawloops \
    CLAWLOOPS_LISTEN_ADDR=0.0.0.0:3000 \
    CLAWLOOPS_LOG_FORMAT=json
USER clawloops
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["clawloops", "health", "http://127.0.0.1:3000/readyz"]
ENTRYPOINT ["clawloops"]
CMD ["serve"]
