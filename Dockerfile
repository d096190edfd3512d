# syntax=docker/dockerfile:1
# ssm-association-exporter container image.
#   docker build -t ssm-association-exporter --build-arg SSM_EXPORTER_REVISION=$(git rev-parse --short=12 HEAD) .
# Checked without a Docker engine by tests/dockerfile.rs and scripts/check-dockerfile.

# --- build -------------------------------------------------------------------------------
FROM docker.io/library/rust:1.95.0-slim-bookworm AS build
WORKDIR /src

# Dependency layer: build every dependency against stub sources, so that a change under
# src/ does not rebuild aws-sdk-ssm (about ten minutes on two cores).
# The workspace's other member, crates/ssm-simulator (the `--demo` endpoint), is stubbed too.
COPY Cargo.toml Cargo.lock build.rs ./
COPY crates/ssm-simulator/Cargo.toml ./crates/ssm-simulator/
RUN mkdir -p src config crates/ssm-simulator/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > crates/ssm-simulator/src/main.rs \
    && touch src/lib.rs config/demo.yaml crates/ssm-simulator/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src config crates/ssm-simulator/src

COPY src ./src
COPY config ./config
COPY crates/ssm-simulator/src ./crates/ssm-simulator/src
ARG SSM_EXPORTER_REVISION=unknown
ENV SSM_EXPORTER_REVISION=${SSM_EXPORTER_REVISION}
# Make sure the real sources are newer than the stubs' build outputs.
RUN touch src/main.rs src/lib.rs crates/ssm-simulator/src/*.rs \
    && cargo build --release --locked --bin ssm-association-exporter \
    && ./target/release/ssm-association-exporter --config.file=config/example.yaml --config.check

# --- runtime -----------------------------------------------------------------------------
# glibc and libgcc only, no shell or package manager; runs as uid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ssm-association-exporter /usr/local/bin/ssm-association-exporter
# An example so the image starts; mount the real config over it (ConfigMap, volume).
COPY config/example.yaml /etc/ssm-association-exporter/config.yaml
USER 65532:65532
EXPOSE 9832
# Distroless has no curl: the binary probes its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/ssm-association-exporter", "--healthcheck", "--web.listen-address=:9832"]
ENTRYPOINT ["/usr/local/bin/ssm-association-exporter", "--config.file=/etc/ssm-association-exporter/config.yaml"]
CMD ["--web.listen-address=:9832"]
