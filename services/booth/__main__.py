from booth.grpc_api import build
from runtime.service import run_service

run_service("booth", build)
