# The Stepgate gateway image: one package, embedded defaults, configured by STEPGATE_* env.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LITELLM_LOCAL_MODEL_COST_MAP=True
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY connectors ./connectors
COPY policies ./policies
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-cache-dir -e . && python -m compileall -q gateway connectors
EXPOSE 8080
CMD ["stepgate", "serve", "--host", "0.0.0.0", "--port", "8080"]
