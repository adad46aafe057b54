# Tollgate enforcer: a static binary on a distroless base, running as a
# non-root user. Build with `make image` (needs a Docker engine).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/enforcer ./cmd/enforcer

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/enforcer /usr/local/bin/enforcer
USER 65532:65532
EXPOSE 8081 8082 8083
ENTRYPOINT ["/usr/local/bin/enforcer"]
CMD ["serve", "--config", "/etc/tollgate/config.yaml"]
