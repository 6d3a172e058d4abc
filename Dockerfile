FROM python:3.11-slim

# The bridge runs in /data: it reads /data/bridge.toml and keeps its SQLite store there,
# so mount a volume on /data and events survive the container.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY mappings ./mappings
RUN pip install --no-cache-dir . && useradd --create-home bridge && mkdir /data && chown bridge /data

USER bridge
WORKDIR /data
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["bridge", "serve", "--host", "0.0.0.0", "--port", "8080"]
