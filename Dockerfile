# Production image: slim Python, non-root, migrations applied before serving.
# Build: docker build -t notice-screening .
# Run:   docker run -p 8000:8000 -e APP_ENV=production \
#          -e DATABASE_URL=postgresql+psycopg://user:pass@db:5432/screening \
#          -e SIGNING_KEY="$(cat signing-key.pem)" -e MASTER_KEY="$(cat master-key)" notice-screening
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/var/lib/notice-screening

RUN groupadd --system app && useradd --system --gid app --home-dir /app app \
    && mkdir -p /var/lib/notice-screening && chown app:app /var/lib/notice-screening

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install . && chown -R app:app /app

USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["sh", "-c", "python -m app migrate && exec python -m app serve --host 0.0.0.0 --port 8000"]
