from runtime.adapters.service import run_service
from warehouse.grpc_api import build

run_service("warehouse", build)
