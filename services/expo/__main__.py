from expo.grpc_api import build
from runtime.adapters.service import run_service

run_service("expo", build)
