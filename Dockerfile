# One image for every Sentinel service; the subcommand picks the role.
# Server mode (clickhouse:// DSNs) needs no libchdb: the embedded engine is
# loaded only when a chdb:// DSN is used, so the image stays small.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
# purego binds libchdb without cgo, so a static binary works.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sentinel ./cmd/sentinel

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/sentinel /usr/local/bin/sentinel
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sentinel"]
CMD ["--help"]
