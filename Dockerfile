# maestro-sync: a static binary on an empty base image.
#   docker build -t maestro-sync .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY third_party ./third_party
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/maestro-sync ./cmd/maestro-sync \
 && mkdir -p /out/cache /out/data /out/home

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/maestro-sync /maestro-sync
COPY --from=build --chown=65532:65532 /out/cache /cache
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/home /home/maestro-sync
ENV HOME=/home/maestro-sync MAESTRO_SYNC_CACHE_DIR=/cache MAESTRO_SYNC_DATA_DIR=/data
# Non-root. To drive the local Docker engine, run with the socket's group
# (docker run --group-add $(stat -c %g /var/run/docker.sock)).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/maestro-sync"]
CMD ["run"]
