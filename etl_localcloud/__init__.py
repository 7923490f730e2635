"""The local cloud: moto's server plus the kit's providers and an embedded PostgreSQL, on 127.0.0.1."""

from etl_localcloud.manager import down, ensure_running, health, status, up, warehouse_info

__all__ = ["down", "ensure_running", "health", "status", "up", "warehouse_info"]
