"""Warehouse service: the registry of public overseas warehouses and their bookings."""
