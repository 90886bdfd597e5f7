# Warren's image, built from source: docker build -t warren .
# (docker/build.sh builds the same final stage from binaries built on the host.)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target x86_64-unknown-linux-gnu -p warren -p warrenctl \
 && mkdir -p /stage/rootfs/etc/warren /stage/rootfs/var/lib/warren \
 && cp target/x86_64-unknown-linux-gnu/release/warren \
       target/x86_64-unknown-linux-gnu/release/warrenctl /stage/ \
 && echo "warren:x:999:999:Warren:/var/lib/warren:/sbin/nologin" > /stage/rootfs/etc/passwd \
 && echo "warren:x:999:" > /stage/rootfs/etc/group

FROM scratch
COPY --from=build /stage/rootfs/etc/ /etc/
COPY --from=build --chown=999:999 /stage/rootfs/var/ /var/
COPY --from=build /stage/warren /stage/warrenctl /usr/local/bin/
ENV WARREN_DATA_DIR=/var/lib/warren \
    WARREN_BIND=0.0.0.0 \
    WARREN_LOOPBACK_USERS=
USER 999:999
VOLUME /var/lib/warren
EXPOSE 5672 5671 15672 15692
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/warren", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/warren"]
