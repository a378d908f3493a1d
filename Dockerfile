# The simlab lab image: `docker compose up` runs it beside a password-protected Mosquitto.
FROM python:3.11-slim

WORKDIR /opt/simlab
COPY pyproject.toml README.md ./
COPY simlab ./simlab
COPY devices ./devices
COPY grading ./grading
RUN pip install --no-cache-dir . && useradd --create-home simlab \
    && mkdir -p /var/lib/simlab && chown simlab /var/lib/simlab
USER simlab
ENV XDG_STATE_HOME=/var/lib/simlab

# OPC UA 4840-4842, Modbus TCP 5020-5022, platform API 8080
EXPOSE 4840 4841 4842 5020 5021 5022 8080
ENTRYPOINT ["simlab"]
CMD ["up", "--headless", "--host", "0.0.0.0"]
