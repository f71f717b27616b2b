# sliceedge in a container: the static binary on distroless, as a non-root
# user, with the store on a volume.
#
#   docker build -t sliceedge --build-arg VERSION=$(git describe --tags --always) .
#   docker run -p 8080:8080 -v sliceedge-store:/var/lib/sliceedge \
#     -v $PWD/edge.yaml:/etc/sliceedge/edge.yaml:ro sliceedge
#
# The image's /etc/sliceedge/edge.yaml (scripts/container.yaml) listens on
# :8080 with its store in /var/lib/sliceedge; mount your own over it.
# scripts/check-dockerfile.sh checks this file where docker cannot build it.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/sliceedge ./cmd/sliceedge \
 && /out/sliceedge config check scripts/container.yaml \
 && mkdir -p /out/store

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sliceedge /usr/local/bin/sliceedge
COPY scripts/container.yaml /etc/sliceedge/edge.yaml
# The volume starts owned by the service's user (distroless nonroot).
COPY --from=build --chown=65532:65532 /out/store /var/lib/sliceedge
USER 65532:65532
WORKDIR /var/lib/sliceedge
VOLUME ["/var/lib/sliceedge"]
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sliceedge"]
CMD ["serve", "--config", "/etc/sliceedge/edge.yaml", "--log-format", "json"]
