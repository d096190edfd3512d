# syntax=docker/dockerfile:1
# ssm-association-exporter container image, for linux/amd64 and linux/arm64 (Graviton).
#   docker build -t ssm-association-exporter --build-arg SSM_EXPORTER_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/ssm-association-exporter:TAG --push .
# The arm64 image is cross-compiled on the build machine's own platform (Debian's
# gcc-aarch64-linux-gnu as linker): no emulated compile. Checked without a Docker engine by
# tests/it/deploy.rs (argv of ENTRYPOINT + CMD and HEALTHCHECK run for real), scripts/check-dockerfile
# (this build, natively) and scripts/check-arm64 (the cross build, run under qemu-user).
#
# Base images are pinned by tag and digest (the multi-platform index). The digests were taken
# from public Dockerfiles pinning the same tags, not read from the registries here. Refresh:
#   docker buildx imagetools inspect docker.io/library/rust:1.95.0-slim-bookworm --format '{{json .Manifest.Digest}}'
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot --format '{{json .Manifest.Digest}}'

# --- build (runs on the build machine's platform) ----------------------------------------
FROM --platform=$BUILDPLATFORM docker.io/library/rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS build
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src

# A cross toolchain when the target differs from the build machine: the Rust standard library
# for the target, and Debian's cross gcc as linker and C compiler (aws-lc-sys builds C).
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar
RUN set -eu; \
    if [ "$TARGETARCH" = "$BUILDARCH" ]; then \
      : > /cross-target; \
    else \
      case "$TARGETARCH" in \
        arm64) triple=aarch64-unknown-linux-gnu; packages="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
        amd64) triple=x86_64-unknown-linux-gnu; packages="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
        *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
      esac; \
      apt-get update; \
      apt-get install -y --no-install-recommends $packages; \
      rm -rf /var/lib/apt/lists/*; \
      rustup target add "$triple"; \
      echo "$triple" > /cross-target; \
    fi

# Dependency layer: build every dependency against stub sources, so that a change under
# src/ does not rebuild aws-sdk-ssm (about ten minutes on two cores).
# The workspace's other member, crates/ssm-simulator (the `--demo` endpoint), is stubbed too.
COPY Cargo.toml Cargo.lock build.rs ./
COPY crates/ssm-simulator/Cargo.toml ./crates/ssm-simulator/
RUN mkdir -p src config crates/ssm-simulator/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > crates/ssm-simulator/src/main.rs \
    && touch src/lib.rs config/demo.yaml crates/ssm-simulator/src/lib.rs \
    && if [ -s /cross-target ]; then export CARGO_BUILD_TARGET="$(cat /cross-target)"; fi \
    && cargo build --release --locked \
    && rm -rf src config crates/ssm-simulator/src

COPY src ./src
COPY config ./config
COPY crates/ssm-simulator/src ./crates/ssm-simulator/src
ARG SSM_EXPORTER_REVISION=unknown
ENV SSM_EXPORTER_REVISION=${SSM_EXPORTER_REVISION}
# Make sure the real sources are newer than the stubs' build outputs. The binary is checked
# against the shipped config when it can run here (a native build).
RUN touch src/main.rs src/lib.rs crates/ssm-simulator/src/*.rs \
    && if [ -s /cross-target ]; then export CARGO_BUILD_TARGET="$(cat /cross-target)"; fi \
    && cargo build --release --locked --bin ssm-association-exporter \
    && cp "target/${CARGO_BUILD_TARGET:-.}/release/ssm-association-exporter" /ssm-association-exporter \
    && if [ ! -s /cross-target ]; then /ssm-association-exporter --config.file=config/example.yaml --config.check; fi

# --- runtime (the target platform) -------------------------------------------------------
# glibc and libgcc only, no shell or package manager; runs as uid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
ARG SSM_EXPORTER_REVISION=unknown
ARG SSM_EXPORTER_VERSION=0.1.0
LABEL org.opencontainers.image.title="ssm-association-exporter" \
      org.opencontainers.image.description="Prometheus exporter for AWS Systems Manager State Manager association executions" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${SSM_EXPORTER_VERSION}" \
      org.opencontainers.image.revision="${SSM_EXPORTER_REVISION}" \
      org.opencontainers.image.source="https://github.com/example/ssm-association-exporter" \
      org.opencontainers.image.documentation="https://github.com/example/ssm-association-exporter#readme" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /ssm-association-exporter /usr/local/bin/ssm-association-exporter
COPY LICENSE /usr/share/doc/ssm-association-exporter/LICENSE
# An example so the image starts; mount the real config over it (ConfigMap, volume).
COPY config/example.yaml /etc/ssm-association-exporter/config.yaml
USER 65532:65532
EXPOSE 9832
# Distroless has no curl: the binary probes its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/ssm-association-exporter", "--healthcheck", "--web.listen-address=:9832"]
# The binary alone, as blackbox_exporter and node_exporter do: every flag is in CMD, so
# `docker run IMAGE --log.level=debug` or a Kubernetes `args:` replaces all of them at once
# and no flag is ever given twice.
ENTRYPOINT ["/usr/local/bin/ssm-association-exporter"]
CMD ["--config.file=/etc/ssm-association-exporter/config.yaml", "--web.listen-address=:9832"]
