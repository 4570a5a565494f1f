from bureau.grpc_api import build
from runtime.service import run_service

run_service("bureau", build)
