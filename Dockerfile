# The image of Spool's control plane (k8s/ runs it as spool:latest):
#   docker build -t spool:latest .
# Every service is in it; the command picks one, e.g. `python -m spool_gateway`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package is built from; runtime dependencies only, no dev extra.
COPY pyproject.toml /src/
COPY libs /src/libs
COPY services /src/services
RUN pip install /src && rm -rf /src

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/spool spool
USER 10001:10001
WORKDIR /home/spool

EXPOSE 8080
CMD ["python", "-m", "spool_gateway"]
