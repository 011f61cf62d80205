# One image for every role of the FACEIT bot; the command picks the role (see compose.yaml):
#   python -m bot | dramatiq actors --queues high | python scheduler.py | python -m dashboard
#   python admin.py COMMAND
# No secret is baked in: every token and password arrives at run time through the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

# A fixed uid/gid so volume ownership is predictable across rebuilds and hosts.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
       --shell /usr/sbin/nologin app

WORKDIR /app

# Requirements first: this layer is rebuilt only when the pins change, not on every code edit.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The code stays owned by root: the app user can read it but not rewrite it.
COPY . .

USER app

# Harmless default; compose.yaml (or `docker run IMAGE COMMAND`) chooses the real role.
CMD ["python", "admin.py", "--help"]
