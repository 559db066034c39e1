# syntax=docker/dockerfile:1
#
# The duecourse worker image: `docker build -t duecourse .`
# Two stages, so the runtime image carries the installed virtualenv but no sources, build
# directories or pip caches.

FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

WORKDIR /src

# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when the
# dependency list changes, not on every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# Then the project itself (everything setuptools packages: see [tool.setuptools] in pyproject).
COPY README.md ./
COPY duecourse/ duecourse/
COPY workflows/ workflows/
COPY activities/ activities/
COPY setup.py worker.py starter.py ./
RUN pip install --no-cache-dir .


FROM python:3.11-slim AS runtime

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DUECOURSE_LOG_FORMAT=json

RUN groupadd --system --gid 10001 duecourse \
    && useradd --system --uid 10001 --gid duecourse --home-dir /app --create-home \
        --shell /usr/sbin/nologin duecourse

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER duecourse:duecourse

CMD ["duecourse", "worker", "--migrate"]
