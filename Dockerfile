# syntax=docker/dockerfile:1
# Email Sequence: one image for web (daphne), worker and beat (pick with the command; see docker-compose.yml).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_ENV=production \
    VAR_DIR=/app/var \
    PORT=8000
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY . .
# Static files are collected at build time with the production (hashed, compressed) storage; the throwaway
# values below only satisfy the production checks of the settings and are not kept in the image.
RUN mkdir -p /app/var \
    && DJANGO_ENV=production ALLOWED_HOSTS=build.invalid REDIS_URL=redis://build.invalid:6379/0 \
       SECRET_KEY="build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
       python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R app:app /app/var
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 CMD ["python", "-m", "config.healthcheck"]
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers", "config.asgi:application"]
