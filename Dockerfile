# One image for every Veil service; docker-compose.yml picks the subcommand.
#   docker build -t veil .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin veil && cp target/release/veil /usr/local/bin/veil

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/veil veil \
    && mkdir -p /var/lib/veil/keys /var/lib/veil/parquet && chown -R veil /var/lib/veil
COPY --from=build /usr/local/bin/veil /usr/local/bin/veil
# The reviewed policy, the tenants file, the dashboards' viewers (public demo tokens!) and the
# settings; mount your own over them.
COPY allowlist.yaml tenants.yaml viewers.yaml veil.toml /etc/veil/
WORKDIR /etc/veil
USER veil
ENTRYPOINT ["veil"]
CMD ["--help"]
