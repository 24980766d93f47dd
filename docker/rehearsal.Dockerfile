# Local stand-ins for what a registry would provide, used only by scripts/rehearse.sh on machines
# that reach no registry but Debian's archive. Every stage starts from debian:bookworm-slim, which
# the script makes with debootstrap. The build context is the folder the script fills.

# The three binaries, built on the host (replaces the Dockerfile's chef/planner/builder stages).
FROM scratch AS binaries
COPY out/ /out/

# The ONNX Runtime library setup.sh took out of the pinned wheel (replaces the onnxruntime stage).
FROM scratch AS onnxruntime
COPY libonnxruntime.so /opt/onnxruntime/lib/libonnxruntime.so

# Stands in for redis:7.2-alpine: Debian's redis-server, run by compose's own command line.
FROM debian:bookworm-slim AS redis
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /data
CMD ["redis-server"]

# Stands in for qdrant/qdrant:v1.18.1: the same version (the binary QDRANT_BIN names, or the one
# scripts/install-qdrant.sh downloaded; built only when there is one), laid out like the official image (/qdrant, storage in /qdrant/storage).
FROM debian:bookworm-slim AS qdrant
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY qdrant /qdrant/qdrant
WORKDIR /qdrant
RUN mkdir -p /qdrant/storage /qdrant/snapshots
ENV QDRANT__TELEMETRY_DISABLED=true
EXPOSE 6333 6334
ENTRYPOINT ["/qdrant/qdrant"]

# Stands in for nginx:1.27-alpine (the `local` profile's loopback port): Debian's nginx with the
# stream module.
FROM debian:bookworm-slim AS nginx
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-stream \
    && rm -rf /var/lib/apt/lists/*
