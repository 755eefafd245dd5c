"""``from app.services.storage_service import storage_service`` (runbook STEP 5e)."""

from app.storage import StorageService

storage_service = StorageService()

__all__ = ["storage_service"]
