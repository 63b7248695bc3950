# linktrack: multi-stage build, slim non-root runtime.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schema ./schema
COPY benches ./benches
RUN cargo build --release --locked --bin linktrack

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/linktrack --create-home linktrack
COPY --from=build /src/target/release/linktrack /usr/local/bin/linktrack
USER 10001
WORKDIR /var/lib/linktrack
ENV LINKTRACK_LISTEN=0.0.0.0:8080 \
    LINKTRACK_DATA_DIR=/var/lib/linktrack/data \
    LINKTRACK_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s CMD ["/usr/local/bin/linktrack", "health", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["/usr/local/bin/linktrack"]
CMD ["serve"]
