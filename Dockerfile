# Coup de pouce: one image for every role (`run --role web|dispatcher|scheduler`) and for
# `db upgrade`. compose.yaml starts it in each of them; see "Running it for a city" in the README.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/coupdepouce
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY bot bot
COPY flows flows
COPY storage storage
COPY locales locales
# A plain install, without the test extras; building compiles the gettext catalogs (setup.py).
# Every dependency has a wheel for this Python but http-ece, which is pure Python: no compiler.
RUN /opt/coupdepouce/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/coupdepouce/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
RUN groupadd --system --gid 10001 coupdepouce \
    && useradd --system --uid 10001 --gid coupdepouce --create-home \
        --home-dir /home/coupdepouce --shell /usr/sbin/nologin coupdepouce
COPY --from=build /opt/coupdepouce /opt/coupdepouce
# Numeric, so that an orchestrator can tell it is not root.
USER 10001:10001
WORKDIR /home/coupdepouce
# Matplotlib's font list (its DejaVu fonts also serve the PDF code sheets), made once here
# rather than at every start.
RUN python -c "import matplotlib.font_manager"
EXPOSE 8080
STOPSIGNAL SIGTERM
# Alive: /healthz. Whether it can serve (database, migrations, a channel) is /readyz, which
# the reverse proxy asks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["coupdepouce"]
CMD ["run"]
