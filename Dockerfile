# One image for the services and the operator; each Deployment chooses its command.
# BASE: an image with Python 3.11 as `python` and `useradd`. A registry build keeps the
# default; `make up` builds on a Debian 12 base it makes itself (no registry to pull from).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
WORKDIR /src
RUN python -m venv /opt/commerce
# The dependencies in a layer of their own, resolved together with grpcio-tools (the stubs'
# generator must match the protobuf runtime): a change to the code alone reuses this layer.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
 && /opt/commerce/bin/pip install --no-cache-dir -r /tmp/requirements.txt grpcio-tools "setuptools>=75"
COPY README.md ./
COPY devstack/ devstack/
COPY services/ services/
COPY operator/ operator/
COPY protos/ protos/
# gRPC stubs are generated here, by the build, as `make protos` does for development.
RUN /opt/commerce/bin/python -m grpc_tools.protoc -Icommerce_services/rpc=protos \
      --python_out=services --grpc_python_out=services protos/commerce/v1/*.proto \
 && /opt/commerce/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
 && /opt/commerce/bin/pip uninstall --yes grpcio-tools

FROM ${BASE}
RUN useradd --system --uid 10001 --no-create-home commerce
COPY --from=build /opt/commerce /opt/commerce
ENV PATH=/opt/commerce/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
