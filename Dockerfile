# Multi-stage build: compile in the Rust image, run in a slim Debian with only the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo .cargo
COPY src src
COPY migrations migrations
# Cargo.toml declares the scoring benchmark: its file must exist for the manifest to load.
COPY benches benches
RUN cargo build --release --locked --bin rapport

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 rapport
COPY --from=build /src/target/release/rapport /usr/local/bin/rapport
USER rapport
ENV RAPPORT_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["rapport"]
CMD ["serve"]
