# linktrack: multi-stage build, slim non-root runtime.
#
# The build stage compiles the dependencies first, against a dummy main, lib
# and bench, so that layer is rebuilt only when Cargo.toml or Cargo.lock
# change; the sources follow. scripts/image-build-stage runs this stage's
# COPY and RUN lines outside Docker (no container engine in CI) and checks
# the binary. Keep RUN paths relative to WORKDIR: that script maps /src to a
# temp dir.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The image's binary carries no debug info (the shared [profile.release]
# keeps line tables for local profiling; only this build overrides it).
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/hot_path.rs \
    && cargo build --release --locked --bin linktrack \
    && rm -rf src target/release/linktrack target/release/deps/linktrack-* target/release/deps/liblinktrack-* target/release/.fingerprint/linktrack-*
COPY src ./src
COPY schema ./schema
# Served at /openapi.json, compiled in with include_str!.
COPY docs/openapi.yaml ./docs/
RUN cargo build --release --locked --bin linktrack \
    && target/release/linktrack --version

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/linktrack --create-home linktrack
COPY --from=build /src/target/release/linktrack /usr/local/bin/linktrack
# Runs as uid 10001 with a read-only root filesystem (docker run --read-only,
# or readOnlyRootFilesystem in k8s/base): the only writable path it needs is
# the data directory below, mounted as a volume.
USER 10001
WORKDIR /var/lib/linktrack
ENV LINKTRACK_LISTEN=0.0.0.0:8080 \
    LINKTRACK_DATA_DIR=/var/lib/linktrack/data \
    LINKTRACK_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s CMD ["/usr/local/bin/linktrack", "health", "--url", "http://127.0.0.1:8080"]
ENTRYPOINT ["/usr/local/bin/linktrack"]
CMD ["serve"]
