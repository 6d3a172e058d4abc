# Build stage: the wheel, exactly what `pip install` of a release would get.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY mappings ./mappings
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime stage: the wheel and its dependencies, no sources, no build tools.
FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 bridge \
    && mkdir /data && chown bridge:bridge /data
COPY docker/entrypoint.sh /usr/local/bin/bridge-entrypoint

# The bridge runs in /data and keeps its SQLite store there (./bridge.db): mount a volume on
# /data and events survive the container. Configuration comes from BRIDGE_... variables (or
# BRIDGE_CONFIG_TOML), so no file is needed; a /data/bridge.toml is read if there is one.
# A root-owned bind mount: start the container as root (`--user root`); the entrypoint gives
# /data to the bridge user and drops to it before the bridge starts.
USER bridge
WORKDIR /data
VOLUME /data
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
ENTRYPOINT ["bridge-entrypoint"]
CMD ["bridge", "serve", "--host", "0.0.0.0", "--port", "8080"]
