"""Make the app importable without the checkout's real .env: settings come from this environment instead."""

import os

os.environ["APP_ENV_FILE"] = os.devnull
os.environ.setdefault("DATABASE_URL", "postgresql+asyncpg://app_user@127.0.0.1:1/postgres")
os.environ.setdefault("ADMIN_TOKEN", "test-admin-token")
os.environ.setdefault("API_TOKEN", "test-api-token")
os.environ.setdefault("VECTOR_BACKEND", "pgvector")
