from booth.grpc_api import build
from runtime.adapters.service import run_service

run_service("booth", build)
